package whip

import "github.com/pion/rtp"

// reorderSize is how many packets a reorder buffer holds.
const reorderSize = 128

// reorder puts the RTP packets of one stream back in sequence-number order: UDP may swap
// packets, and NACK retransmissions arrive late. A missing packet is waited for until
// maxWait later packets are buffered, then given up (the caller learns about the loss).
// It holds no timer: a gap is resolved by the packets that follow it.
type reorder struct {
	maxWait int
	buf     [reorderSize]*rtp.Packet
	n       int // packets buffered
	next    uint16
	started bool
}

func newReorder(maxWait int) *reorder {
	if maxWait < 1 {
		maxWait = 1
	}
	if maxWait > reorderSize-1 {
		maxWait = reorderSize - 1
	}
	return &reorder{maxWait: maxWait}
}

// push adds p and appends to out the packets that are now in order. lost reports that
// packets were given up before the returned ones.
func (r *reorder) push(p *rtp.Packet, out []*rtp.Packet) (_ []*rtp.Packet, lost bool) {
	seq := p.SequenceNumber
	if !r.started {
		r.started, r.next = true, seq
	}
	d := int16(seq - r.next)
	switch {
	case d < 0 && d > -reorderSize*4:
		return out, false // late (already given up) or duplicate
	case d < 0 || int(d) >= reorderSize:
		// Far outside the window: the sender restarted its sequence or a long outage. Give
		// up everything buffered and start again at p.
		out, lost = r.flush(out), true
		r.next = seq
	}
	slot := &r.buf[seq%reorderSize]
	if *slot != nil {
		return out, lost // duplicate
	}
	*slot = p
	r.n++
	out = r.drain(out)
	for r.n >= r.maxWait {
		// Give up the gap: skip to the oldest buffered packet.
		for r.buf[r.next%reorderSize] == nil {
			r.next++
		}
		lost = true
		out = r.drain(out)
	}
	return out, lost
}

// drain appends the in-order packets from next on.
func (r *reorder) drain(out []*rtp.Packet) []*rtp.Packet {
	for {
		slot := &r.buf[r.next%reorderSize]
		if *slot == nil {
			return out
		}
		out = append(out, *slot)
		*slot = nil
		r.n--
		r.next++
	}
}

// flush appends every buffered packet in order, skipping the gaps.
func (r *reorder) flush(out []*rtp.Packet) []*rtp.Packet {
	for i := 0; i < reorderSize && r.n > 0; i++ {
		slot := &r.buf[r.next%reorderSize]
		if *slot != nil {
			out = append(out, *slot)
			*slot = nil
			r.n--
		}
		r.next++
	}
	return out
}
