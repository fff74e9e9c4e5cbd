package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/rtp"
)

// readRTSP plays rawURL with gortsplib's client (DESCRIBE, SETUP of every media, PLAY)
// over transport ("tcp" or "udp") until ctx ends, recording what arrives into rs. H.264
// is depacketized into access units (RFC 6184) to find keyframes and stamps; other media
// are counted.
func readRTSP(ctx context.Context, rawURL, transport string, rs *readerStats) error {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("rtsp: bad URL: %w", err)
	}
	proto := gortsplib.ProtocolTCP
	if transport == "udp" {
		proto = gortsplib.ProtocolUDP
	}
	rs.begin(time.Now())
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	if err := c.Start(); err != nil {
		return fmt.Errorf("rtsp: %w", err)
	}
	stop := context.AfterFunc(ctx, c.Close)
	defer func() {
		stop()
		c.Close()
	}()
	desc, _, err := c.Describe(u)
	if err != nil {
		return rtspErr(ctx, "describe", err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return rtspErr(ctx, "setup", err)
	}
	var (
		h264Media  *description.Media
		h264Format *format.H264
	)
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			if h, ok := f.(*format.H264); ok && h264Format == nil {
				h264Media, h264Format = m, h
			}
		}
	}
	c.OnPacketRTPAny(func(m *description.Media, f format.Format, pkt *rtp.Packet) {
		rs.bytes.Add(int64(len(pkt.Payload)))
		rs.media(time.Now())
	})
	if h264Format != nil {
		dec, err := h264Format.CreateDecoder()
		if err != nil {
			return fmt.Errorf("rtsp: h264 decoder: %w", err)
		}
		// This replaces the callback above for the video format.
		c.OnPacketRTP(h264Media, h264Format, func(pkt *rtp.Packet) {
			rs.bytes.Add(int64(len(pkt.Payload)))
			rtspVideo(c, h264Media, dec, pkt, rs)
		})
	}
	if _, err := c.Play(nil); err != nil {
		return rtspErr(ctx, "play", err)
	}
	err = c.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("rtsp: %w", err)
}

// rtspVideo depacketizes one H.264 RTP packet and records the access unit it completes.
func rtspVideo(c *gortsplib.Client, m *description.Media, dec *rtph264.Decoder, pkt *rtp.Packet, rs *readerStats) {
	au, err := dec.Decode(pkt)
	at := time.Now()
	if err != nil {
		// ErrMorePacketsNeeded: a fragment; others: a loss the decoder recovers from.
		if !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			rs.media(at)
		}
		return
	}
	f := videoFrame{at: at, key: nalusHaveIDR(au)}
	f.st, f.stamped = stampInNALUs(au)
	if pts, ok := c.PacketPTS(m, pkt); ok {
		f.dts, f.hasDTS = time.Duration(pts)*time.Second/90000, true
	}
	rs.video(f)
}

func rtspErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("rtsp %s: %w", op, err)
}
