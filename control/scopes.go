package control

import (
	"net/http"
	"slices"
	"strings"
)

// API key scopes. A key's scopes are a comma-separated list; "*" (the default) allows
// everything. The route-to-scope table:
//
//	GET  /api/me                                     any valid credential
//	GET  /api/streams, /api/streams/{id},
//	     /api/streams/public, /api/streams/open,
//	     /api/stats/public, /api/relay-platforms,
//	     /api/streams/{id}/relays                    streams:read
//	POST/PUT/DELETE /api/streams... (including
//	     playback-token and playback-token/revoke,
//	     relays and relays/{relay_id})               streams:write (implies streams:read)
//	playback of a private stream with the key        streams:read
//	GET  /api/vods/storage, /api/vods,
//	     /api/vods/download/{filename},
//	     POST /api/vods/download-archive,
//	     GET /api/sftp/vod/list|read|download         vods:read
//	POST/DELETE /api/vods/storage, POST
//	     /api/vods/storage/test, DELETE
//	     /api/vods/{filename}, POST /api/sftp/vod/
//	     mkdir|upload|write|rename, DELETE
//	     /api/sftp/vod/delete                        vods:write (implies vods:read)
//	GET  /api/chat/channels, /api/chat/channels/
//	     {id}/messages, /api/chat/thread/{id}         chat:read
//	GET  /ws/chat, POST/PUT/DELETE /api/chat/...      chat:write (implies chat:read)
//	everything else (API keys, tokens, admin)        "*" only
//
// "streams:*" is both streams scopes, "vods:*" both vods scopes, "chat:*" both chat scopes. Login tokens (JWT) always
// have "*". A key without the scope a route needs gets 403.
const (
	scopeAll          = "*"
	scopeStreamsRead  = "streams:read"
	scopeStreamsWrite = "streams:write"
	scopeStreamsAll   = "streams:*"
	scopeVODsRead     = "vods:read"
	scopeVODsWrite    = "vods:write"
	scopeVODsAll      = "vods:*"
	scopeChatRead     = "chat:read"
	scopeChatWrite    = "chat:write"
	scopeChatAll      = "chat:*"
	// needAnyScope marks routes every valid credential may call.
	needAnyScope = ""
)

// knownScopes are the scopes a key may be created with.
var knownScopes = []string{scopeAll, scopeStreamsRead, scopeStreamsWrite, scopeStreamsAll,
	scopeVODsRead, scopeVODsWrite, scopeVODsAll, scopeChatRead, scopeChatWrite, scopeChatAll}

const maxScopesLen = 200

// parseScopes normalises a comma-separated scope list: trimmed, deduplicated, in the
// given order; empty means "*". Unknown scopes are a 400.
func parseScopes(raw string) (string, error) {
	if len(raw) > maxScopesLen {
		return "", errorf(http.StatusBadRequest, "scopes longer than %d characters", maxScopesLen)
	}
	var out []string
	for _, sc := range strings.Split(raw, ",") {
		sc = strings.TrimSpace(sc)
		if sc == "" || slices.Contains(out, sc) {
			continue
		}
		if !slices.Contains(knownScopes, sc) {
			return "", errorf(http.StatusBadRequest, "unknown scope %q (known: %s)", sc, strings.Join(knownScopes, ", "))
		}
		out = append(out, sc)
	}
	if len(out) == 0 || slices.Contains(out, scopeAll) {
		return scopeAll, nil
	}
	return strings.Join(out, ","), nil
}

// scopesAllow reports whether a credential with the scope list may call a route that
// needs need. Within a resource ("streams", "vods"), "R:*" allows every scope of R and
// "R:write" also allows "R:read".
func scopesAllow(scopes, need string) bool {
	if need == needAnyScope {
		return true
	}
	needRes, needOp, _ := strings.Cut(need, ":")
	for _, sc := range strings.Split(scopes, ",") {
		res, op, _ := strings.Cut(sc, ":")
		switch {
		case sc == scopeAll:
			return true
		case need == scopeAll:
		case sc == need:
			return true
		case res != "" && res == needRes && (op == "*" || (op == "write" && needOp == "read")):
			return true
		}
	}
	return false
}
