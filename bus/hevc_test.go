package bus

import (
	"bytes"
	"testing"
)

func TestParseHEVCConfig(t *testing.T) {
	vps, sps, pps := []byte{0x40, 1, 2}, []byte{0x42, 3, 4, 5}, []byte{0x44, 6}
	v, s, p, err := ParseHEVCConfig(hevcConfig(vps, sps, pps))
	if err != nil || !bytes.Equal(v[0], vps) || !bytes.Equal(s[0], sps) || !bytes.Equal(p[0], pps) {
		t.Fatalf("got %x %x %x %v", v, s, p, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 23), hevcConfig(vps, sps, pps)[:30]} {
		if _, _, _, err := ParseHEVCConfig(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
}

func FuzzParseHEVCConfig(f *testing.F) {
	f.Add(hevcConfig([]byte{0x40, 1}, []byte{0x42, 2}, []byte{0x44, 3}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, s, p, err := ParseHEVCConfig(b)
		if err == nil && (len(s) == 0 || len(p) == 0) {
			t.Fatal("accepted a record without SPS/PPS")
		}
	})
}

// hevcConfig builds an HEVCDecoderConfigurationRecord with one VPS, SPS and PPS.
func hevcConfig(vps, sps, pps []byte) []byte {
	b := make([]byte, 22)
	b[0] = 1
	b = append(b, 3)
	for i, n := range [][]byte{vps, sps, pps} {
		b = append(b, byte(32+i), 0, 1, byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}
