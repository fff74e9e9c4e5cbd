package bus

import "testing"

func TestAACChannels(t *testing.T) {
	for config, want := range map[uint8]int{0: 0, 1: 1, 2: 2, 6: 6, 7: 8, 8: 0, 15: 0} {
		if got := AACChannels(config); got != want {
			t.Errorf("AACChannels(%d) = %d, want %d", config, got, want)
		}
	}
}
