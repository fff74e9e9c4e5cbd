// Package control is relaycast's control plane: the HTTP API (gorilla/mux) for setup,
// login, API keys, users, streams and stream relays; the ingest.Authorizer that admits
// publishers; the egress.Resolver that maps playback ids to bus streams and guards private
// streams; the relay.TargetSource that gives the relay manager each stream's destinations;
// the live state of streams (following the bus's events); and the Prometheus metrics.
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
// # Relays
//
// A stream may be pushed, while live, to at most 10 destinations (Twitch, YouTube, Kick,
// another relaycast with the "portal" platform, any RTMP/RTMPS server). The relay package
// pushes; control stores the destinations and answers:
//
//	GET    /api/relay-platforms                 {"platforms":[{"id","name","default_url"}, ...]}
//	GET    /api/streams/{id}/relays             {"relays":[relay, ...]}
//	POST   /api/streams/{id}/relays             relay
//	PUT    /api/streams/{id}/relays/{relay_id}  relay
//	DELETE /api/streams/{id}/relays/{relay_id}  {"message":"relay deleted"}
//
// As for streams, single objects are sent bare (not wrapped) with 200, lists wrapped. Only
// the stream's owner may list or change its relays; anyone else, admins included, gets the
// stream's 404. POST takes platform (an id from /api/relay-platforms), name (1-100
// characters), rtmp_url (rtmp:// or rtmps://, a host and an application path, no user
// info, query or fragment; optional when the platform has a default_url, which an empty
// value selects), stream_key (1-512 bytes, no spaces or control characters), enabled
// (default true) and tls_verify (default true). PUT takes the same fields, all optional;
// absent ones keep their value, so the stored key stays unless stream_key is given.
// tls_verify is a relaycast extension: false accepts an rtmps destination's self-signed
// certificate (another relaycast's generated one); the connection stays encrypted but is
// not authenticated.
//
// A relay on the wire is {"id", "stream_id", "platform", "name", "rtmp_url",
// "has_stream_key", "enabled", "tls_verify", "created_at", "updated_at", "state",
// "last_error", "connected_since", "bytes_sent", "reconnects", "skipped"}. The stream key
// is never returned. state (idle, connecting, live, retrying, failed) and the counters come
// from Config.Relays; a relay the manager does not know, or any relay without a manager, is
// idle with zero counters; connected_since is null unless live. Every change to a stream's
// relays (and deleting the stream or its owner) calls Reload with the stream's playback id,
// so a live stream's relays follow at once.
//
// # Secrets
//
// Publish keys (live_...), RTMP tokens (rtmp_...) and API keys (portal_...) are 32 random
// bytes in hex behind their prefix; only their SHA-256 is stored and they are shown once.
// Playback ids (pub_...) are public and stable. The master key (LoadSecretKey) derives the
// JWT signing key, the playback-token HMAC key and the AES-256-GCM keys of Sealer. Relay
// destination keys, which must be recovered to push, are sealed (purpose "relay-keys",
// the stream id as associated data) and opened only for RelayTargets. Paths are logged
// with their secret segments (ptk_, live_, ...) redacted.
//
// # Goroutines
//
// New starts the live-state goroutine (bus events to the database and to Subscribe
// callbacks) and a janitor (expired tokens, rate-limit buckets); Close stops both and
// waits for them.
package control
