package rtmpguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/yutopp/go-amf0"
)

// amf encodes values with go-amf0, as go-rtmp and ffmpeg-like clients frame them.
func amf(t testing.TB, values ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := amf0.NewEncoder(&b)
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// cat concatenates byte slices and single bytes.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case []byte:
			b = append(b, p...)
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case rune:
			b = append(b, byte(p))
		case string: // an AMF0 UTF-8 string without its marker (a key)
			b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
			b = append(b, p...)
		default:
			panic(p)
		}
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

var objEnd = []byte{0, 0, markerObjectEnd}

// nested returns depth strict arrays of one element each around a null.
func nested(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, markerStrictArray, 0, 0, 0, 1)
	}
	return append(b, markerNull)
}

// nestedObjects returns depth objects, each the value of key "a" of the one around it.
func nestedObjects(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, markerObject, 0, 1, 'a')
	}
	b = append(b, markerNull)
	for range depth {
		b = append(b, objEnd...)
	}
	return b
}

// regressionSeed is the fuzzer's find (ingest/rtmp/testdata/fuzz/FuzzMetadata): a strict
// array of 0x6f000c76 elements where a boolean was.
const regressionSeed = "\x02\x00\nonMetaData\b\x00\x00\x00\x02\x00\bhasVideo\no\x00\fvideocodecid\x02\x00\x04hvc1\x00\x00\t"

// smuggled hides a strict array of 2^31-1 elements inside a string that go-amf0 does not
// see as one: in the ECMA array, "b" follows a non-null value, so go-amf0 reads its object
// as keys only, ends it inside the string and then decodes "c" (null, which empties its
// reused value) and "d", the array, from the string's bytes.
func smuggled() []byte {
	const strLen = 0x0210 // its first two bytes, 0x02 0x02, are read as a key length of 0x0202
	content := make([]byte, strLen)
	inner := cat(objEnd, "c", markerNull, "d", markerStrictArray, u32(0x7fffffff))
	copy(content[0x0202-1:], inner) // the key starts at the length's low byte
	return cat(markerECMAArray, u32(2),
		"a", markerString, "x",
		"b", markerObject, "k", markerString, byte(strLen>>8), byte(strLen&0xff), content, objEnd,
		objEnd)
}

func TestCheckAMF0(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"connect", amf(t, "connect", 1, map[string]any{"app": "live", "tcUrl": "rtmp://h/live",
			"fpad": false, "capabilities": 15.0, "fourCcList": []any{"hvc1", "av01"}}), true},
		{"metadata", amf(t, "@setDataFrame", "onMetaData", amf0.ECMAArray{"width": 640.0,
			"encoder": "Lavf", "stereo": true}), true},
		{"publish", amf(t, "publish", 5, nil, "live_key", "live"), true},
		{"scalars", cat(markerNumber, make([]byte, 8), markerBoolean, 1, markerNull, markerUndefined,
			markerUnsupported, markerReference, 0, 1, markerObjectEnd, markerDate, make([]byte, 10)), true},
		{"long string and xml", cat(markerLongString, u32(3), []byte("abc"), markerXMLDocument, u32(0)), true},
		{"typed object", cat(markerTypedObject, "Cls", "a", markerNull, objEnd), true},
		{"strict array", cat(markerStrictArray, u32(2), markerNull, markerString, "x"), true},
		{"ecma count is a hint", cat(markerECMAArray, u32(0), "a", markerNull, "b", markerNull, objEnd), true},
		{"ecma: object first", cat(markerECMAArray, u32(2), "a", markerObject, "k", markerNull, objEnd,
			"b", markerNumber, make([]byte, 8), objEnd), true},
		{"ecma: object after null", cat(markerECMAArray, u32(2), "a", markerNull, "b", markerObject,
			"k", markerNull, objEnd, objEnd), true},
		{"ecma: empty object after a value", cat(markerECMAArray, u32(2), "a", markerString, "x",
			"b", markerObject, objEnd, objEnd), true},
		{"depth 64", nested(MaxDepth), true},
		{"object depth 64", nestedObjects(MaxDepth), true},

		{"truncated number", cat(markerNumber, 0, 0), false},
		{"string past the end", cat(markerString, 0, 9, 'a'), false},
		{"long string past the end", cat(markerLongString, u32(0xffffffff), 'a'), false},
		{"strict array 2^31-1", cat(markerStrictArray, u32(0x7fffffff)), false},
		{"strict array count > bytes left", cat(markerStrictArray, u32(3), markerNull, markerNull), false},
		{"ecma count 2^32-1", cat(markerECMAArray, u32(0xffffffff), objEnd), false},
		{"object without end", cat(markerObject, "a", markerNull), false},
		{"empty key without end marker", cat(markerObject, 0, 0, markerNull), false},
		{"depth 65", nested(MaxDepth + 1), false},
		{"object depth 65", nestedObjects(MaxDepth + 1), false},
		{"amf3", cat(markerAVMPlus, 1), false},
		{"movie clip", cat(markerMovieClip), false},
		{"record set", cat(markerRecordSet), false},
		{"unknown marker", cat(0x12), false},
		{"regression seed", []byte(regressionSeed), false},
		{"ecma: object after a value", cat(markerECMAArray, u32(2), "a", markerNull, "n", markerBoolean, 1,
			"b", markerObject, "k", markerNull, objEnd, objEnd), false},
		{"smuggled strict array", smuggled(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAMF0(tc.body)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if tc.ok {
				decodeChecked(t, tc.body)
			}
		})
	}
}

// TestSmuggledIsMisframed shows why "ecma: object after a value" is refused: go-amf0 reads
// such an object's keys only. (With the smuggled array's real count it would allocate
// 32 GiB; here the count is small.)
func TestSmuggledIsMisframed(t *testing.T) {
	b := smuggled()
	i := bytes.Index(b, u32(0x7fffffff))
	copy(b[i:], u32(3))
	// The array's three elements, then the end of the ECMA array as go-amf0 reads it.
	b = append(b[:i+4:i+4], cat(markerNull, markerNull, markerNull, objEnd)...)
	var v any
	err := amf0.NewDecoder(bytes.NewReader(b)).Decode(&v)
	arr, _ := v.(amf0.ECMAArray)
	if err != nil || len(arr["d"].([]any)) != 3 {
		t.Fatalf("go-amf0 decoded %#v, %v; the misreading this guards against is gone", v, err)
	}
}

func TestCheckValuesLeading(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		ok   bool
	}{
		{"command", amf(t, "createStream", 2, nil), true},
		{"no transaction id", amf(t, "createStream"), false},
		{"transaction id null", amf(t, "createStream", nil), false},
		{"name is an object", cat(markerObject, "k", markerString, "v", objEnd, markerNumber, make([]byte, 8)), false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkCommand(tc.body); (err == nil) != tc.ok {
				t.Fatalf("checkCommand: %v", err)
			}
		})
	}
	bad := cat(markerStrictArray, u32(0x7fffffff))
	if err := checkData(append(amf(t, "@setDataFrame"), bad...)); err != nil {
		t.Fatalf("@setDataFrame values are the handler's to check: %v", err)
	}
	if err := checkData(append(amf(t, "onMetaData"), bad...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("onMetaData: %v", err)
	}
	if err := checkData(append(amf(t, "@setDataFrameX"), bad...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("@setDataFrameX: %v", err)
	}
}

// decodeChecked decodes an accepted body with go-amf0, value after value into `any`, and
// fails when a value go-amf0 decodes does not end where CheckAMF0's walk ended it, or the
// decoding allocates out of proportion to the body.
func decodeChecked(t testing.TB, body []byte) {
	w := walker{b: body}
	var ends []int
	for w.off < len(body) {
		if err := w.value(0); err != nil {
			t.Fatalf("walk of an accepted body: %v", err)
		}
		ends = append(ends, w.off)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := bytes.NewReader(body)
	got, stopped := decodeAll(r)
	runtime.ReadMemStats(&after)
	for i, end := range got {
		if i >= len(ends) || end != ends[i] {
			t.Fatalf("go-amf0 ended value %d at offset %d; the walk at %v", i+1, end, ends)
		}
	}
	if !stopped && len(got) != len(ends) {
		t.Fatalf("go-amf0 decoded %d values, the walk %d", len(got), len(ends))
	}
	// Measured: go-amf0 allocates at most ~25 bytes per input byte (maps of one-byte keys).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64*uint64(len(body))+64<<10 {
		t.Fatalf("decoding %d bytes allocated %d", len(body), alloc)
	}
}

// decodeAll decodes values until the end, an error or a panic (go-amf0 decodes through
// reflection and panics on some input); it returns the offset after each value and whether
// it stopped early.
func decodeAll(r *bytes.Reader) (ends []int, stopped bool) {
	defer func() {
		if recover() != nil {
			stopped = true
		}
	}()
	size := int(r.Size())
	dec := amf0.NewDecoder(r)
	for r.Len() > 0 {
		var v any
		if err := dec.Decode(&v); err != nil {
			return ends, true
		}
		ends = append(ends, size-r.Len())
	}
	return ends, false
}

// FuzzCheckAMF0: CheckAMF0 never panics, and a body it accepts decodes with go-amf0 value
// by value exactly as it was walked, quickly and with allocations in proportion to its size.
func FuzzCheckAMF0(f *testing.F) {
	f.Add([]byte(regressionSeed))
	f.Add(smuggled())
	f.Add(nested(MaxDepth))
	f.Add(nestedObjects(3))
	f.Add(amf(f, "connect", 1, map[string]any{"app": "live", "fourCcList": []any{"hvc1"}}))
	f.Add(amf(f, "@setDataFrame", "onMetaData", amf0.ECMAArray{"width": 640.0, "encoder": "x", "o": nil}))
	f.Add(cat(markerECMAArray, u32(1), "a", markerObject, "k", markerDate, make([]byte, 10), objEnd, objEnd))
	f.Add(cat(markerTypedObject, "Cls", "a", markerLongString, u32(1), 'x', objEnd, markerXMLDocument, u32(0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckAMF0(b) != nil {
			return
		}
		start := time.Now()
		decodeChecked(t, b)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("decoding %d accepted bytes took %s", len(b), d)
		}
	})
}

func TestErrorsName(t *testing.T) {
	err := CheckAMF0(cat(markerStrictArray, u32(0x7fffffff)))
	if !strings.Contains(err.Error(), "strict array of 2147483647 elements") {
		t.Fatalf("error %q does not say what was refused", err)
	}
}
