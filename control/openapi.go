package control

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/gorilla/mux"
)

// GET /openapi.json is generated from the route table, so that it lists exactly what the
// server serves: every path template and method, its path parameters, and whether it
// needs a credential. Request and answer bodies are described in doc.go; the spec gives
// the error body every route shares.

// publicRoutes are the routes callable without a credential, by path template. The media
// paths check their own credentials (stream keys, playback ids and tokens).
var publicRoutes = map[string]bool{
	"/health": true, "/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true,
	"/watch/{id}": true, "/static/": true, "/api/setup": true, "/api/token": true, "/api/register": true,
	"/api/stream/{key}/thumbnail": true, "/api/stream/{id}/hls/": true, "/api/stream/{id}/webrtc/whip": true, "/api/stream/{id}/webrtc/whep": true,
	"/api/webhooks/incoming/{token}": true,
}

// routeInfo is one registered route.
type routeInfo struct {
	template string
	methods  []string
	prefix   bool // a PathPrefix route: the template is the start of the paths it serves
}

// apiRoutes walks the routers and returns every route, sorted by template.
func apiRoutes(routers ...*mux.Router) []routeInfo {
	var out []routeInfo
	for _, r := range routers {
		_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			tpl, err := route.GetPathTemplate()
			if err != nil {
				return nil
			}
			methods, _ := route.GetMethods()
			if len(methods) == 0 {
				methods = []string{http.MethodGet}
			}
			rx, _ := route.GetPathRegexp()
			out = append(out, routeInfo{template: tpl, methods: methods, prefix: !strings.HasSuffix(rx, "$")})
			return nil
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].template < out[j].template })
	return out
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)(:[^}]*)?\}`)

// openAPISpec builds the OpenAPI 3.1 document of the routes.
func openAPISpec(version string, routes []routeInfo) map[string]any {
	paths := map[string]any{}
	for _, rt := range routes {
		path := pathParam.ReplaceAllString(rt.template, "{$1}")
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.template, -1) {
			schema := map[string]any{"type": "string"}
			if m[2] == ":[0-9]+" {
				schema = map[string]any{"type": "integer"}
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": schema})
		}
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		for _, method := range rt.methods {
			op := map[string]any{
				"operationId": strings.ToLower(method) + pathParam.ReplaceAllString(strings.ReplaceAll(rt.template, "/", "_"), "by_$1"),
				"responses": map[string]any{
					"200":     map[string]any{"description": "success (see the API documentation for the body)"},
					"default": map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
				},
			}
			if len(params) > 0 {
				op["parameters"] = params
			}
			if publicRoutes[rt.template] {
				op["security"] = []any{}
			}
			if rt.prefix {
				op["description"] = "serves every path below this prefix"
			}
			item[strings.ToLower(method)] = op
		}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "relaycast API", "version": version},
		"paths":   paths,
		"security": []any{
			map[string]any{"bearer": []any{}},
		},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "a login token (POST /api/token) or an API key (portal_...); also ?token="},
			},
			"schemas": map[string]any{
				"Error": map[string]any{"type": "object", "required": []any{"error", "status"}, "properties": map[string]any{
					"error": map[string]any{"type": "string"}, "status": map[string]any{"type": "integer"}}},
			},
		},
	}
}

// openAPIDoc renders the spec once, on first use (after every route is registered).
type openAPIDoc struct {
	once    sync.Once
	routers []*mux.Router
	body    []byte
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	s.openapi.once.Do(func() {
		s.openapi.body, _ = json.MarshalIndent(openAPISpec(s.cfg.Version, apiRoutes(s.openapi.routers...)), "", "  ")
	})
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(s.openapi.body)
	return err
}
