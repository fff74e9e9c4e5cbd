package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBodyBytes caps every JSON request body.
const maxBodyBytes = 1 << 20

// apiError is an error with the HTTP status it maps to. Domain methods return it so that
// handlers stay thin.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

// errorf returns an apiError with a formatted message.
func errorf(status int, format string, args ...any) error {
	return &apiError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized   = &apiError{http.StatusUnauthorized, "Unauthorized"}
	errStreamNotFound = &apiError{http.StatusNotFound, "stream not found"}
	errAdminOnly      = &apiError{http.StatusForbidden, "admin access required"}
)

// errorBody is the wire shape of every error.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError writes the error body for status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Status: status})
}

// decodeJSON reads one JSON object from r's body into dst: at most maxBodyBytes, no unknown
// fields, nothing after it.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	return decodeJSONLimit(w, r, dst, maxBodyBytes)
}

// decodeJSONLimit is decodeJSON with a body limit of limit bytes, for the few endpoints
// that take larger bodies (file contents).
func decodeJSONLimit(w http.ResponseWriter, r *http.Request, dst any, limit int64) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return errorf(http.StatusBadRequest, "invalid JSON: unexpected data after the object")
	}
	return nil
}

// decodeOptionalJSON is decodeJSON for endpoints whose body may be empty.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := decodeJSON(w, r, dst)
	var ae *apiError
	if errors.As(err, &ae) && ae.Msg == "invalid JSON: empty body" {
		return nil
	}
	return err
}

func jsonError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "invalid JSON: empty body")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "invalid JSON: malformed")
	case errors.As(err, &typ):
		return errorf(http.StatusBadRequest, "invalid JSON: field %q must be %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errorf(http.StatusBadRequest, "invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	default:
		return errorf(http.StatusBadRequest, "invalid JSON")
	}
}
