package bus

// AACChannels is the channel count of an AAC AudioSpecificConfig channel configuration
// (ISO/IEC 14496-3 table 1.19), the value a Track's Channels holds: the configuration
// itself for 1–6, 8 for 7, and 0 (unknown) when a program config element defines the
// layout (0) or the value is reserved (8–15). mediacommon's deprecated ChannelCount
// computed the same.
func AACChannels(config uint8) int {
	switch {
	case config >= 1 && config <= 6:
		return int(config)
	case config == 7:
		return 8
	}
	return 0
}
