package control

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// concretePath fills a route template's parameters with plausible values.
func concretePath(tpl string) string {
	return pathParam.ReplaceAllStringFunc(tpl, func(m string) string {
		switch {
		case strings.Contains(m, "filename"):
			return "s/2026-01-01_00-00-00/chunk_000.mkv"
		case strings.Contains(m, "[0-9]"):
			return "1"
		default:
			return "x"
		}
	})
}

// TestRouteTable: every route is in /openapi.json, and every route not documented as
// public refuses a request without credentials with 401 in the error shape.
func TestRouteTable(t *testing.T) {
	e := newEnv(t)
	e.setup()
	var spec struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	e.call(200, "GET", "/openapi.json", "", nil, &spec)
	if spec.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", spec.OpenAPI)
	}
	routes := apiRoutes(e.srv.openapi.routers...)
	if len(routes) < 40 {
		t.Fatalf("only %d routes walked", len(routes))
	}
	for _, rt := range routes {
		path := pathParam.ReplaceAllString(rt.template, "{$1}")
		for _, m := range rt.methods {
			op, ok := spec.Paths[path][strings.ToLower(m)]
			if !ok {
				t.Errorf("%s %s is not in /openapi.json", m, path)
				continue
			}
			if _, hasSec := op["security"]; hasSec != publicRoutes[rt.template] {
				t.Errorf("%s %s: security override %v, public %v", m, path, hasSec, publicRoutes[rt.template])
			}
			if publicRoutes[rt.template] || m == http.MethodHead || m == http.MethodOptions {
				continue
			}
			code, body, _ := e.do(m, concretePath(rt.template), "", nil)
			var eb struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			if code != http.StatusUnauthorized || json.Unmarshal(body, &eb) != nil || eb.Status != 401 || eb.Error == "" {
				t.Errorf("%s %s without credentials: %d %s, want 401 in the error shape", m, concretePath(rt.template), code, body)
			}
		}
	}
}
