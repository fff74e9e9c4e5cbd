package rtmp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	ingestrtmp "github.com/relaycast/relaycast/ingest/rtmp"
)

// relayFor reads the source stream from its cached keyframe and pushes it with p for d.
func relayFor(t *testing.T, hub *bus.Hub, id string, p *Publisher, d time.Duration) (units int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	r, err := hub.Subscribe(ctx, id, bus.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p.SetTracks(r.Stream().Tracks())
	for {
		u, err := r.Next(ctx)
		if err != nil {
			return units
		}
		if err := p.WriteUnit(u); err != nil {
			t.Fatalf("WriteUnit after %d units: %v", units, err)
		}
		units++
	}
}

// TestPublisher pushes a stream (ffmpeg → ingest A → bus A) with the publish client to a
// second relaycast ingest over RTMP and RTMPS, whose bus gets the same tracks and units, and
// to an ffmpeg -listen sink, which decodes it. A wrong key is rejected.
func TestPublisher(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	a := newEnv(t, nil)
	ffmpegPublish(t, fmt.Sprintf("rtmp://%s/live/live_key1", a.in.Addr()), 12)
	waitLive(t, a.hub, "s1", 45)
	src := a.hub.Stream("s1").Tracks()

	hubB := bus.New(bus.Config{ReconnectGrace: -1, Logger: a.log})
	t.Cleanup(hubB.Close)
	b, err := ingestrtmp.New(ingestrtmp.Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: testTLSConfig(t),
		Hub: hubB, Auth: fakeAuth{}, PlainEnabled: true, Logger: a.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	for i, tc := range []struct {
		scheme string
		addr   net.Addr
	}{{"rtmp", b.Addr()}, {"rtmps", b.TLSAddr()}} {
		t.Run("ingest-"+tc.scheme, func(t *testing.T) {
			t.Parallel()
			key, id := fmt.Sprintf("live_key%d", 7+i), fmt.Sprintf("s%d", 7+i)
			url := fmt.Sprintf("%s://%s/live/%s", tc.scheme, tc.addr, key)
			rB, err := hubB.Subscribe(t.Context(), id, bus.ReaderOptions{Wait: true})
			if err != nil {
				t.Fatal(err)
			}
			defer rB.Close()
			start := time.Now()
			p, err := Dial(t.Context(), url, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			dialed := time.Since(start)
			sent := relayFor(t, a.hub, "s1", p, 2*time.Second)
			_ = p.Close()
			_ = p.Close()

			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			var got, video, audio int
			var first *bus.Unit
			last := map[bus.Codec]time.Duration{}
			for {
				u, err := rB.Next(ctx)
				if err != nil {
					break // the relayed stream ended (no grace on hub B)
				}
				if first == nil {
					first = u
				}
				if d, ok := last[u.Track.Codec]; ok && u.DTS < d {
					t.Fatalf("%s DTS went back: %v after %v", u.Track.Codec, u.DTS, d)
				}
				last[u.Track.Codec] = u.DTS
				got++
				if u.Track.Codec == bus.CodecH264 {
					video++
				} else {
					audio++
				}
			}
			if first == nil || !first.Key || first.Track.Codec != bus.CodecH264 {
				t.Fatalf("first unit on bus B: %+v", first)
			}
			if !bytes.Equal(first.Track.Config, src[0].Config) || first.Track.Width != 640 {
				t.Fatalf("video track %+v, source %+v", first.Track, src[0])
			}
			if got < sent-5 || video < 40 || audio < 60 {
				t.Fatalf("sent %d units, bus B got %d (%d video, %d audio)", sent, got, video, audio)
			}
			t.Logf("%s: dial+publish %s; %d units sent, %d on bus B (%d video, %d audio), %d bytes",
				tc.scheme, dialed.Round(time.Millisecond), sent, got, video, audio, p.BytesSent())
		})
	}

	t.Run("ffmpeg-sink", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		url := fmt.Sprintf("rtmp://%s/live/x", addr)
		cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info",
			"-listen", "1", "-i", url, "-t", "2", "-f", "null", "-")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// ffmpeg listens a moment after it starts.
		var p *Publisher
		for deadline := time.Now().Add(5 * time.Second); p == nil; {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			p, err = Dial(ctx, url, nil)
			cancel()
			if err != nil && !strings.Contains(err.Error(), "refused") {
				t.Log(err)
			}
			if p == nil && time.Now().After(deadline) {
				t.Fatalf("ffmpeg sink: %v\n%s", err, stderr.String())
			}
			if p == nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		defer p.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
		defer cancel()
		r, err := a.hub.Subscribe(ctx, "s1", bus.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		p.SetTracks(r.Stream().Tracks())
		var werr error
	loop:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("ffmpeg sink: %v\n%s", err, stderr.String())
				}
				break loop
			default:
			}
			u, err := r.Next(ctx)
			if err != nil {
				t.Fatalf("source: %v\n%s", err, stderr.String())
			}
			if werr == nil {
				werr = p.WriteUnit(u)
			}
		}
		out := stderr.String()
		if !strings.Contains(out, "Video: h264") || !strings.Contains(out, "Audio: aac") ||
			!strings.Contains(out, "640x360") {
			t.Fatalf("ffmpeg sink output:\n%s", out)
		}
		// The sink left: the Publisher notices.
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Publisher did not notice the sink leaving")
		}
		t.Logf("ffmpeg sink decoded the pushed stream; publisher ended with: %v", p.Err())
	})

	t.Run("rejected", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		_, err := Dial(t.Context(), fmt.Sprintf("rtmp://%s/live/wrong_secret_key", b.Addr()), nil)
		if !errors.Is(err, ErrRejected) || strings.Contains(err.Error(), "wrong_secret_key") {
			t.Fatalf("Dial with a wrong key: %v", err)
		}
		// RTMPS with a certificate that does not verify.
		_, err = Dial(t.Context(), fmt.Sprintf("rtmps://%s/live/live_key9", b.TLSAddr()), nil)
		if err == nil || strings.Contains(err.Error(), "live_key9") {
			t.Fatalf("Dial to an unverified certificate: %v", err)
		}
		// A server that accepts and stays silent: Dial gives up at ctx's deadline.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		silent := time.Now()
		if _, err := Dial(ctx, fmt.Sprintf("rtmp://%s/app/key", ln.Addr()), nil); err == nil ||
			time.Since(silent) > 2*time.Second {
			t.Fatalf("silent server: %v after %s", err, time.Since(silent))
		}
		t.Logf("rejections took %s", time.Since(start).Round(time.Millisecond))
	})
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, addr, app, name, redacted string
		secure                        bool
	}{
		{"rtmp://live.twitch.tv/app/live_123_abc", "live.twitch.tv:1935", "app", "live_123_abc", "rtmp://live.twitch.tv/app/***", false},
		{"rtmps://a.rtmps.youtube.com/live2/abcd-efgh", "a.rtmps.youtube.com:443", "live2", "abcd-efgh", "rtmps://a.rtmps.youtube.com/live2/***", true},
		{"rtmp://127.0.0.1:1936/live/inst/key?x=1", "127.0.0.1:1936", "live/inst", "key?x=1", "rtmp://127.0.0.1:1936/live/inst/***", false},
	} {
		tg, err := parseURL(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if tg.addr != tc.addr || tg.app != tc.app || tg.name != tc.name || tg.secure != tc.secure || tg.redacted != tc.redacted {
			t.Fatalf("%s: %+v", tc.in, tg)
		}
	}
	for _, bad := range []string{"http://x/app/key", "rtmp:///app/key", "rtmp://host/onlyapp", "rtmp://host/app/"} {
		if _, err := parseURL(bad); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}
