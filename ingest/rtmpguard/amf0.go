package rtmpguard

import (
	"encoding/binary"
	"fmt"
)

// MaxDepth is how deeply CheckAMF0 lets containers (objects, ECMA arrays, strict arrays,
// typed objects) nest. Real bodies nest two or three levels.
const MaxDepth = 64

// AMF0 markers (AMF0 specification §2.1).
const (
	markerNumber      = 0x00
	markerBoolean     = 0x01
	markerString      = 0x02
	markerObject      = 0x03
	markerMovieClip   = 0x04 // reserved
	markerNull        = 0x05
	markerUndefined   = 0x06
	markerReference   = 0x07
	markerECMAArray   = 0x08
	markerObjectEnd   = 0x09
	markerStrictArray = 0x0a
	markerDate        = 0x0b
	markerLongString  = 0x0c
	markerUnsupported = 0x0d
	markerRecordSet   = 0x0e // reserved
	markerXMLDocument = 0x0f
	markerTypedObject = 0x10
	markerAVMPlus     = 0x11 // switch to AMF3
)

// CheckAMF0 reports whether body is a sequence of complete AMF0 values that go-amf0 can
// decode without a runaway allocation or recursion; the error wraps ErrMalformed. See the
// package documentation for what an accepted body guarantees. It does not allocate.
func CheckAMF0(body []byte) error {
	return checkValues(body)
}

// checkValues checks body like CheckAMF0; its first values must also have the markers
// leading, in order (go-rtmp decodes those into typed targets).
func checkValues(body []byte, leading ...byte) error {
	w := walker{b: body}
	for i := 0; w.off < len(body) || i < len(leading); i++ {
		if i < len(leading) {
			if w.off == len(body) {
				return w.fail("value %d missing", i+1)
			}
			if body[w.off] != leading[i] {
				return w.fail("value %d has marker 0x%02x, want 0x%02x", i+1, body[w.off], leading[i])
			}
		}
		if err := w.value(0); err != nil {
			return err
		}
	}
	return nil
}

// walker reads AMF0 values from b, from off on.
type walker struct {
	b   []byte
	off int
}

func (w *walker) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), w.off)
}

func (w *walker) left() int { return len(w.b) - w.off }

func (w *walker) skip(n int) error {
	if n > w.left() {
		return w.fail("%d bytes needed, %d left", n, w.left())
	}
	w.off += n
	return nil
}

func (w *walker) u8() (byte, error) {
	if w.left() < 1 {
		return 0, w.fail("value missing")
	}
	w.off++
	return w.b[w.off-1], nil
}

func (w *walker) u16() (int, error) {
	if w.left() < 2 {
		return 0, w.fail("2 bytes needed, %d left", w.left())
	}
	w.off += 2
	return int(binary.BigEndian.Uint16(w.b[w.off-2:])), nil
}

func (w *walker) u32() (uint32, error) {
	if w.left() < 4 {
		return 0, w.fail("4 bytes needed, %d left", w.left())
	}
	w.off += 4
	return binary.BigEndian.Uint32(w.b[w.off-4:]), nil
}

// count reads an array's element count: every element takes at least one byte, so a count
// larger than the bytes left is refused before anything sizes a slice by it.
func (w *walker) count(kind string) (int, error) {
	n, err := w.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(w.left()) {
		return 0, w.fail("%s of %d elements with %d bytes left", kind, n, w.left())
	}
	return int(n), nil
}

// value walks one value at nesting depth depth.
func (w *walker) value(depth int) error {
	m, err := w.u8()
	if err != nil {
		return err
	}
	switch m {
	case markerNumber:
		return w.skip(8)
	case markerBoolean:
		return w.skip(1)
	case markerString:
		n, err := w.u16()
		if err != nil {
			return err
		}
		return w.skip(n)
	case markerNull, markerUndefined, markerUnsupported, markerObjectEnd:
		return nil
	case markerReference:
		return w.skip(2)
	case markerDate:
		return w.skip(8 + 2) // milliseconds, time zone
	case markerLongString, markerXMLDocument:
		n, err := w.u32()
		if err != nil {
			return err
		}
		if uint64(n) > uint64(w.left()) {
			return w.fail("%d bytes needed, %d left", n, w.left())
		}
		w.off += int(n)
		return nil
	case markerObject:
		return w.properties(depth+1, false)
	case markerTypedObject:
		n, err := w.u16() // class name
		if err != nil {
			return err
		}
		if err := w.skip(n); err != nil {
			return err
		}
		return w.properties(depth+1, false)
	case markerECMAArray:
		// go-amf0 ignores the count and reads properties up to the end marker, as this does.
		if _, err := w.count("ECMA array"); err != nil {
			return err
		}
		return w.properties(depth+1, true)
	case markerStrictArray:
		if depth+1 > MaxDepth {
			return w.fail("nested deeper than %d", MaxDepth)
		}
		n, err := w.count("strict array")
		if err != nil {
			return err
		}
		for range n {
			if err := w.value(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case markerAVMPlus:
		return w.fail("AMF3 value")
	default: // movie clip, record set (reserved) and unknown markers
		return w.fail("marker 0x%02x", m)
	}
}

// properties walks an object's properties up to and including the end marker (an empty
// key, then 0x09). In an ECMA array go-amf0 decodes every property into one reused value:
// once a property was not null, it reads a following object's keys only, skipping the
// values, which frames the bytes differently from the specification. Such an object is
// refused unless it is empty (both readings then agree).
func (w *walker) properties(depth int, ecma bool) error {
	if depth > MaxDepth {
		return w.fail("nested deeper than %d", MaxDepth)
	}
	filled := false // the ECMA array's reused value holds a non-null value
	for {
		n, err := w.u16()
		if err != nil {
			return err
		}
		if n == 0 {
			m, err := w.u8()
			if err != nil {
				return err
			}
			if m != markerObjectEnd {
				return w.fail("empty key not followed by the object end marker")
			}
			return nil
		}
		if err := w.skip(n); err != nil {
			return err
		}
		if ecma && filled && w.left() >= 3 && w.b[w.off] == markerObject &&
			(w.b[w.off+1] != 0 || w.b[w.off+2] != 0) {
			return w.fail("object after a non-null value in an ECMA array (go-amf0 misreads it)")
		}
		if w.left() > 0 {
			filled = w.b[w.off] != markerNull
		}
		if err := w.value(depth); err != nil {
			return err
		}
	}
}
