package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/egress/whep/whepclient"
)

// whepDialTimeout bounds the offer/answer exchange and ICE/DTLS.
const whepDialTimeout = 20 * time.Second

// readWHEP plays the WHEP endpoint url with pion (relaycast's whepclient) until ctx ends,
// recording what arrives into rs. Every H.264 access unit is depacketized (by whepclient)
// for its keyframes and stamps.
func readWHEP(ctx context.Context, url string, api *webrtc.API, hc *http.Client, rs *readerStats) error {
	rs.begin(time.Now())
	dctx, cancel := context.WithTimeout(ctx, whepDialTimeout)
	defer cancel()
	var audio, video int64 // packets seen at the last poll
	p, err := whepclient.Dial(dctx, url, whepclient.Options{API: api, HTTPClient: hc, OnVideo: func(au [][]byte, _ uint32, at time.Time) {
		f := videoFrame{at: at, key: nalusHaveIDR(au)}
		f.st, f.stamped = stampInNALUs(au)
		rs.video(f)
	}})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("whep: %w", err)
	}
	defer p.Close()
	// Bytes and audio arrivals come from the Player's counters, polled: whepclient reads
	// audio on its own goroutine and has no per-packet callback for it.
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			st := p.Stats()
			rs.bytes.Add(st.VideoBytes + st.AudioBytes - last)
			return nil
		case <-p.Done():
			return fmt.Errorf("whep: the peer connection ended")
		case now := <-t.C:
			st := p.Stats()
			rs.bytes.Add(st.VideoBytes + st.AudioBytes - last)
			last = st.VideoBytes + st.AudioBytes
			if st.AudioPackets != audio || st.VideoPackets != video {
				rs.media(now)
			}
			audio, video = st.AudioPackets, st.VideoPackets
		}
	}
}
