// Package control is relaycast's control plane: the HTTP API (gorilla/mux) for setup,
// login, API keys, users and streams; the ingest.Authorizer that admits publishers; the
// egress.Resolver that maps playback ids to bus streams and guards private streams; the
// live state of streams
// (following the bus's events); and the Prometheus metrics.
//
// # Wire conventions
//
// Every answer is JSON. Every error is {"error": "...", "status": N} with N the HTTP
// status, including unknown routes (404) and wrong methods (405). Request bodies are
// limited to 1 MiB; unknown fields and malformed JSON are refused with 400.
//
// # Authentication
//
// A request authenticates with "Authorization: Bearer <credential>" or "?token=<credential>",
// where the credential is a login token (a JWT from POST /api/token, HS256, 24 h, recorded
// by its jti so that it can be listed and revoked) or an API key (portal_...). API keys
// carry scopes; see scopes.go for the route-to-scope table. One function
// (verifyCredential) checks credentials for the API and for playback alike.
//
// # Playback access
//
// Public streams play without authentication, by playback id, on every protocol. A
// private stream (is_public false) plays only for a viewer who presents (Bearer or
// ?token=) the owner's or an admin's login token or API key (streams:read), or a signed
// playback token (ptk_..., POST /api/streams/{id}/playback-token, 60 s to 24 h, default
// 1 h). A playback token may also replace the playback id in the URL, which is how the
// API hands it out: HLS players then carry it into every relative sub-request. Playback
// tokens are stateless HMAC-SHA256 signatures; POST /api/streams/{id}/playback-token/revoke
// voids all of a stream's tokens at once, regenerating the publish key voids none,
// deleting the stream voids all. Refusals are egress.ErrForbidden (403), unknown streams
// egress.ErrNotFound (404). Private streams never appear in public listings; their
// owner's view marks playback_urls with requires_token. See Resolve and playbacktoken.go.
//
// # Secrets
//
// Publish keys (live_...), RTMP tokens (rtmp_...) and API keys (portal_...) are 32 random
// bytes in hex behind their prefix; only their SHA-256 is stored and they are shown once.
// Playback ids (pub_...) are public and stable. The master key (LoadSecretKey) derives the
// JWT signing key, the playback-token HMAC key and the AES-256-GCM keys of Sealer. Paths
// are logged with their secret segments (ptk_, live_, ...) redacted.
//
// # Goroutines
//
// New starts the live-state goroutine (bus events to the database and to Subscribe
// callbacks) and a janitor (expired tokens, rate-limit buckets); Close stops both and
// waits for them.
package control
