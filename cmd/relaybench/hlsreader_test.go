package main

import (
	"net/url"
	"testing"
)

const llPlaylist = `#EXTM3U
#EXT-X-VERSION:10
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-MEDIA-SEQUENCE:5
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.00000,
seg5.mp4
#EXT-X-PART:DURATION=0.20000,URI="part60.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part61.mp4"
#EXTINF:0.40000,
seg6.mp4
#EXT-X-PART:DURATION=0.20000,URI="part62.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part63.mp4"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part64.mp4"
`

func TestHLSPlaylistFollow(t *testing.T) {
	base, _ := url.Parse("http://h/api/stream/pub_x/hls/video1_stream.m3u8?token=t")
	p, err := parseMediaPlaylist(base, []byte(llPlaylist))
	if err != nil {
		t.Fatal(err)
	}
	if !p.lowLatency() || p.nextMSN != 7 || p.nextPart != 2 || p.hint != "http://h/api/stream/pub_x/hls/part64.mp4" {
		t.Fatalf("playlist: ll %v next %d/%d hint %q", p.lowLatency(), p.nextMSN, p.nextPart, p.hint)
	}
	uris := func(es []hlsEntry) (out []string) {
		for _, e := range es {
			out = append(out, e.uri[len("http://h/api/stream/pub_x/hls/"):])
		}
		return out
	}
	// seg5 has no parts listed: whole; seg6 by its parts; then the in-progress parts.
	if got := uris(p.entries); len(got) != 5 || got[0] != "seg5.mp4" || got[1] != "part60.mp4" || got[4] != "part63.mp4" {
		t.Fatalf("entries %v", got)
	}
	// A new reader starts at the newest independent part.
	todo, resync := p.pending(map[string]bool{})
	if got := uris(todo); resync || len(got) != 2 || got[0] != "part62.mp4" {
		t.Fatalf("start: %v %v", got, resync)
	}
	// A following reader gets what comes after its newest part.
	done := map[string]bool{p.entries[2].uri: true}
	if got, resync := p.pending(done); resync || len(uris(got)) != 2 || uris(got)[0] != "part62.mp4" {
		t.Fatalf("after part61: %v %v", uris(got), resync)
	}
	// A reader whose parts left the playlist resyncs at the newest independent part.
	if got, resync := p.pending(map[string]bool{"http://h/old.mp4": true}); !resync || uris(got)[0] != "part62.mp4" {
		t.Fatalf("resync: %v %v", uris(got), resync)
	}
	if _, err := parseMediaPlaylist(base, []byte("not a playlist")); err == nil {
		t.Fatal("parsed garbage")
	}
}
