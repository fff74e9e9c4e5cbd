package vod

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/at-wat/ebml-go"

	"github.com/relaycast/relaycast/bus"
)

// testMKV is what the tests read of a Matroska file with ebml-go.
type testMKV struct {
	Segment struct {
		Info struct {
			TimecodeScale uint64  `ebml:"TimecodeScale"`
			Duration      float64 `ebml:"Duration"`
		} `ebml:"Info"`
		Tracks struct {
			TrackEntry []struct {
				TrackNumber  uint64 `ebml:"TrackNumber"`
				TrackType    uint64 `ebml:"TrackType"`
				CodecID      string `ebml:"CodecID"`
				CodecPrivate []byte `ebml:"CodecPrivate"`
				CodecDelay   uint64 `ebml:"CodecDelay"`
				SeekPreRoll  uint64 `ebml:"SeekPreRoll"`
				Audio        struct {
					SamplingFrequency float64 `ebml:"SamplingFrequency"`
					Channels          uint64  `ebml:"Channels"`
				} `ebml:"Audio"`
			} `ebml:"TrackEntry"`
		} `ebml:"Tracks"`
		Cluster []struct {
			Timecode    uint64       `ebml:"Timecode"`
			SimpleBlock []ebml.Block `ebml:"SimpleBlock"`
		} `ebml:"Cluster"`
		Cues struct {
			CuePoint []struct {
				CueTime uint64 `ebml:"CueTime"`
			} `ebml:"CuePoint"`
		} `ebml:"Cues"`
	} `ebml:"Segment"`
}

func readMKV(t testing.TB, path string) *testMKV {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m testMKV
	if err := ebml.Unmarshal(bytes.NewReader(b), &m, ebml.WithIgnoreUnknown(true)); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if m.Segment.Info.TimecodeScale != 0 && m.Segment.Info.TimecodeScale != timecodeScale {
		t.Fatalf("%s: TimecodeScale %d", path, m.Segment.Info.TimecodeScale)
	}
	return &m
}

// encodeClip has ffmpeg encode a clip into a Matroska file and returns its path.
func encodeClip(t testing.TB, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clip.mkv")
	args = append([]string{"-hide_banner", "-nostdin", "-v", "error"}, args...)
	args = append(args, "-f", "matroska", out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// clipUnits turns the blocks of an ffmpeg-written Matroska file into bus units (no
// B-frames: PTS = DTS), with tracks given by the caller per Matroska track number.
func clipUnits(m *testMKV, tracks map[uint64]*bus.Track) []*bus.Unit {
	var out []*bus.Unit
	for _, c := range m.Segment.Cluster {
		for _, b := range c.SimpleBlock {
			t := tracks[b.TrackNumber]
			if t == nil || len(b.Data) != 1 {
				continue
			}
			ts := time.Duration(int64(c.Timecode)+int64(b.Timecode)) * time.Millisecond
			out = append(out, &bus.Unit{Track: t, PTS: ts, DTS: ts, Key: b.Keyframe || t.Codec.IsAudio(),
				Payload: b.Data[0], Arrival: time.Now()})
		}
	}
	return out
}

// recordUnits publishes units to a hub as stream id, records it and returns the chunks
// once the stream ended.
func recordUnits(t *testing.T, tracks []*bus.Track, units []*bus.Unit, chunk time.Duration) (string, []Chunk) {
	t.Helper()
	hub := bus.New(bus.Config{RingSize: 8192, ReconnectGrace: -1, Logger: testLogger(t)})
	defer hub.Close()
	dir := t.TempDir()
	var chunks []Chunk
	r, err := New(Config{Hub: hub, SpoolDir: dir, ChunkDuration: chunk, Logger: testLogger(t),
		OnChunk: func(c Chunk) { chunks = append(chunks, c) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pub, err := hub.Publish("x", tracks)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Start("x", SessionInfo{StreamName: "codec test", Owner: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		pub.Write(u)
	}
	hub.End("x")
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("session did not end")
	}
	if st := s.Stats(); st.Dropped > 0 && st.Units == 0 {
		t.Fatalf("nothing recorded: %+v", st)
	}
	return dir, chunks
}

// TestHEVCOpus records real H.265 and Opus units (encoded by ffmpeg, read back from
// Matroska: RTMP cannot carry H.265 from ffmpeg 5.1) in 1 s chunks: the chunks carry
// V_MPEGH/ISO/HEVC with the HEVCDecoderConfigurationRecord and A_OPUS with OpusHead,
// CodecDelay and SeekPreRoll, and each decodes cleanly.
func TestHEVCOpus(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	clip := encodeClip(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000", "-t", "3",
		"-c:v", "libx265", "-x265-params", "bframes=0:keyint=25:log-level=error",
		"-c:a", "libopus", "-b:a", "64k")
	src := readMKV(t, clip)
	tracks := map[uint64]*bus.Track{}
	var list []*bus.Track
	var hvcc, opusHead []byte
	for _, e := range src.Segment.Tracks.TrackEntry {
		var tr *bus.Track
		switch e.CodecID {
		case "V_MPEGH/ISO/HEVC":
			tr, hvcc = &bus.Track{Codec: bus.CodecH265, ClockRate: 90000, Config: e.CodecPrivate}, e.CodecPrivate
		case "A_OPUS":
			tr, opusHead = &bus.Track{Codec: bus.CodecOpus, ClockRate: 48000, Config: e.CodecPrivate,
				SampleRate: 48000, Channels: int(e.Audio.Channels)}, e.CodecPrivate
		default:
			t.Fatalf("clip track %s", e.CodecID)
		}
		tracks[e.TrackNumber] = tr
		list = append(list, tr)
	}
	dir, chunks := recordUnits(t, list, clipUnits(src, tracks), time.Second)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks: %+v", len(chunks), chunks)
	}
	sum := checkChunks(t, dir, chunks, "audio:opus,video:hevc")
	if math.Abs(sum-3) > 0.1 {
		t.Fatalf("durations add up to %.3f s", sum)
	}
	for _, c := range chunks {
		m := readMKV(t, c.Path)
		for _, e := range m.Segment.Tracks.TrackEntry {
			switch e.CodecID {
			case "V_MPEGH/ISO/HEVC":
				if !bytes.Equal(e.CodecPrivate, hvcc) {
					t.Fatalf("%s: HEVC CodecPrivate differs", c.Rel)
				}
			case "A_OPUS":
				if !bytes.Equal(e.CodecPrivate, opusHead) || e.CodecDelay != 6_500_000 ||
					e.SeekPreRoll != 80_000_000 || e.Audio.SamplingFrequency != 48000 {
					t.Fatalf("%s: Opus entry %+v", c.Rel, e)
				}
			default:
				t.Fatalf("%s: track %s", c.Rel, e.CodecID)
			}
		}
		if len(m.Segment.Cues.CuePoint) == 0 {
			t.Fatalf("%s has no cues", c.Rel)
		}
	}
}

// TestOpusAudioOnly records an audio-only stream (Opus without an OpusHead, as WHIP
// gives it): chunks are cut at the chunk duration and decode cleanly.
func TestOpusAudioOnly(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	clip := encodeClip(t, "-f", "lavfi", "-i", "sine=frequency=500:sample_rate=48000", "-t", "5",
		"-ac", "2", "-c:a", "libopus")
	src := readMKV(t, clip)
	tr := &bus.Track{Codec: bus.CodecOpus, ClockRate: 48000, SampleRate: 48000, Channels: 2}
	dir, chunks := recordUnits(t, []*bus.Track{tr},
		clipUnits(src, map[uint64]*bus.Track{src.Segment.Tracks.TrackEntry[0].TrackNumber: tr}), 2*time.Second)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks: %+v", len(chunks), chunks)
	}
	sum := checkChunks(t, dir, chunks, "audio:opus")
	if math.Abs(sum-5) > 0.1 {
		t.Fatalf("durations add up to %.3f s", sum)
	}
	for i, c := range chunks[:2] {
		// Cut at the first frame (20 ms) at or after 2 s.
		if c.Duration < 2*time.Second || c.Duration >= 2020*time.Millisecond {
			t.Fatalf("chunk %d lasts %v", i, c.Duration)
		}
	}
	m := readMKV(t, chunks[0].Path)
	if e := m.Segment.Tracks.TrackEntry[0]; e.CodecID != "A_OPUS" || !bytes.Equal(e.CodecPrivate, opusHead(2)) ||
		e.Audio.Channels != 2 {
		t.Fatalf("track %+v", e)
	}
}
