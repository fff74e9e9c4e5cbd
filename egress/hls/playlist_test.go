package hls

import (
	"strings"
	"testing"
)

const gappedPlaylist = `#EXTM3U
#EXT-X-VERSION:10
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.50000,CAN-SKIP-UNTIL=12.00000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI="p_video1_init.mp4"
#EXT-X-GAP
#EXTINF:2.00000,
gap.mp4
#EXT-X-GAP
#EXTINF:2.00000,
gap.mp4?token=x
#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:17:51.367Z
#EXT-X-PART:DURATION=0.20000,URI="p_video1_part0.mp4",INDEPENDENT=YES
#EXTINF:2.00000,
p_video1_seg2.mp4
#EXT-X-PART:DURATION=0.20000,URI="p_video1_part10.mp4",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p_video1_part11.mp4"
`

func TestStripLeadingGaps(t *testing.T) {
	got := string(stripLeadingGaps([]byte(gappedPlaylist)))
	want := `#EXTM3U
#EXT-X-VERSION:10
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.50000,CAN-SKIP-UNTIL=12.00000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:2
#EXT-X-MAP:URI="p_video1_init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:17:51.367Z
#EXT-X-PART:DURATION=0.20000,URI="p_video1_part0.mp4",INDEPENDENT=YES
#EXTINF:2.00000,
p_video1_seg2.mp4
#EXT-X-PART:DURATION=0.20000,URI="p_video1_part10.mp4",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p_video1_part11.mp4"
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Playlists without gaps, and the multivariant playlist, are left alone.
	for _, pl := range []string{want, "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nvideo1_stream.m3u8\n"} {
		if got := string(stripLeadingGaps([]byte(pl))); got != pl {
			t.Fatalf("changed a playlist without gaps:\n%s", got)
		}
	}
	// Only gaps so far (no real segment yet): all go, the sequence moves past them.
	only := "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-GAP\n#EXTINF:2.00000,\ngap.mp4\n#EXT-X-PART:DURATION=0.2,URI=\"a.mp4\"\n"
	if got := string(stripLeadingGaps([]byte(only))); got != "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PART:DURATION=0.2,URI=\"a.mp4\"\n" {
		t.Fatalf("gaps only: %q", got)
	}
}

func TestKeepsGaps(t *testing.T) {
	for _, c := range []struct {
		ua   string
		want bool
	}{
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", true},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1", true},
		{"AppleCoreMedia/1.0.0.21A329 (iPhone; U; CPU OS 17_0 like Mac OS X)", true},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", false},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36", false},
		{"Lavf/59.27.100", false},
		{"", false},
	} {
		if got := keepsGaps(c.ua); got != c.want {
			t.Errorf("%q: %v, want %v", c.ua, got, c.want)
		}
	}
}

func FuzzStripLeadingGaps(f *testing.F) {
	f.Add([]byte(gappedPlaylist))
	f.Add([]byte("#EXT-X-GAP\n#EXT-X-MEDIA-SEQUENCE:99999999999999999999\ngap.mp4\n"))
	f.Fuzz(func(t *testing.T, pl []byte) {
		out := stripLeadingGaps(pl)
		if strings.Count(string(out), "gap.mp4") > strings.Count(string(pl), "gap.mp4") {
			t.Fatal("added gaps")
		}
	})
}
