// Package control is relaycast's control plane: the HTTP API (gorilla/mux) for setup,
// login, API keys, users, streams, stream relays, VOD storage and chat (routes and
// storage of the chat package's hub); the ingest.Authorizer that admits
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
// # VOD storage
//
// Each user may configure one SFTP server where recordings go (the vod package records
// and uploads; control stores the settings and serves the files). Routes, all owner-only
// (a user sees only their own storage; admins get no access to others'):
//
//	GET    /api/vods/storage                 {"storage": storage} or {"storage": null}
//	POST   /api/vods/storage                 {"message": "storage saved", "storage": storage}
//	DELETE /api/vods/storage                 {"message": "storage removed"}
//	POST   /api/vods/storage/test            {"success", "message", "files_found", "remote_path",
//	                                          "host_key", "host_key_fingerprint", "host_key_pinned"}
//	GET    /api/vods?sort=&order=            {"files": [{"name", "size", "modified"}], "path"}
//	GET    /api/vods/download/{filename}     the file (Range supported)
//	POST   /api/vods/download-archive        a zip of {"files": [...]}
//	DELETE /api/vods/{filename}              {"message": "file deleted", "name"}
//	GET    /api/sftp/vod/list?path=          {"path", "files": [{"name", "path", "is_dir",
//	                                          "is_symlink", "size", "modified", "mode"}]}
//	GET    /api/sftp/vod/read?path=          {"path", "content", "size"}
//	GET    /api/sftp/vod/download?path=      the file (Range supported)
//	POST   /api/sftp/vod/mkdir               {"path"} → {"message", "path"}
//	POST   /api/sftp/vod/upload              multipart "path", "file" → {"message", "path", "size"}
//	POST   /api/sftp/vod/write               {"path", "content"} → {"message", "path", "size"}
//	POST   /api/sftp/vod/rename              {"old_path", "new_path"} → {"message", "old_path", "new_path"}
//	DELETE /api/sftp/vod/delete?path=        {"message": "deleted", "path"}
//
// A storage on the wire is {"host", "port", "username", "auth_method", "remote_path",
// "has_password", "has_key", "has_passphrase", "host_key", "host_key_fingerprint",
// "recording_enabled", "created_at", "updated_at"}; the secrets are never returned.
// host_key (authorized_keys format) and its SHA256 fingerprint are the pinned server key,
// null until the first successful connection, so that the user can check it against the
// server's. POST takes host (a name or an IP address, stored lower-case), port (1-65535,
// default 22), username, auth_method ("password" or "key"; default "key" when only a
// private_key is given, else "password"), password, private_key (PEM or OpenSSH, checked
// to parse), passphrase (of an encrypted private_key), remote_path (absolute, or relative
// to the login directory; "" is the login directory), recording_enabled (default true) and
// host_key. Absent fields keep their value; an absent or empty password, private_key or
// passphrase keeps the stored secret, except that a storage moved to another host or port
// needs its secret again (a stored secret is only ever sent to the server it was given
// for). Only the secrets of the auth method are kept. Changing host or port clears the
// pinned key; host_key sets it explicitly, or clears it with "" (the next connection pins
// the key it sees: how a user accepts a server's new key). Saving does not connect.
// Secrets are sealed at rest (purpose "vod-storage", associated data the user id and the
// field). Recording happens when the storage has recording_enabled and the stream has
// record (a stream field, default true).
//
// POST /api/vods/storage/test connects with the stored configuration or, when the body
// has fields, with them applied to it (nothing of the body is saved), checks that
// remote_path is a writable directory and counts the .mkv files below it. The first
// successful connection to the stored host and port — by test or by any other endpoint —
// pins the server's host key (trust on first use); afterwards another key is refused on
// every endpoint with 502 naming both fingerprints.
//
// Without storage, GET /api/vods/storage answers {"storage": null} and every other
// endpoint 404. Failures of the storage server are 502 with the reason (unreachable,
// authentication refused, host key mismatch, remote_path unusable, other SFTP errors);
// what the server refuses about a file keeps its meaning: missing 404, exists or
// directory not empty 409, permission denied 403. No answer or log line contains a
// password, passphrase or key.
//
// Paths. VOD file names are paths relative to remote_path, as listed:
// StreamName/YYYY-MM-DD_HH-MM-SS/chunk_NNN.mkv. In /api/vods/download/{filename} and
// DELETE /api/vods/{filename} the name is the rest of the URL path, slashes included (raw
// or %2F); these routes and archive entries accept .mkv files only (any case). The
// /api/sftp/vod endpoints take paths relative to remote_path too, where "/" (the default
// of list) and "" name remote_path itself. Everywhere, a path with a ".." segment, an
// absolute path (other than that "/"), a backslash or a control character, or a path that
// leads out of remote_path through a symlink is refused with 400 before anything is done;
// the VOD routes bypass the router's path cleaning for that reason (it would turn
// "download/../x" into a redirect). Symlinks that stay inside remote_path are followed;
// listings do not follow them.
//
// GET /api/vods lists the .mkv files below remote_path, recursively (upload temporaries,
// *.mkv.part, are not listed); sort is name, size or modified (default; "date" is an
// alias), order asc or desc (default), ties by name; modified is a Unix time in seconds;
// path is remote_path as resolved on the server; a remote_path that does not exist yet
// lists no files. Downloads send Content-Type video/x-matroska (application/octet-stream
// for other files of /api/sftp/vod/download), Content-Disposition attachment,
// Last-Modified and Accept-Ranges; one byte range gets 206 with Content-Range, a
// malformed or unsatisfiable one 416 with "Content-Range: bytes */size"; several ranges,
// another unit or an If-Range other than the Last-Modified date get the whole file. The
// archive holds 1 to 500 files, stored (MKV does not compress) under their relative names;
// duplicates are dropped; every name is checked and every file found before the first
// byte; the zip is streamed, and a failure afterwards cuts the connection so that a
// partial zip never looks complete.
//
// The file browser: list shows directories first, then files, by name, symlinks as such;
// read returns UTF-8 text files of at most 5 MiB (others: 400, use download); write
// replaces a file atomically (path.part, then rename) with content of at most 5 MiB,
// creating parents; mkdir creates parents and accepts an existing directory; rename
// refuses an existing new_path (409) and does not create parents; delete removes a
// file, a symlink or an empty directory (409 otherwise), never remote_path. upload streams
// the "file" part (at most 8 GiB) into the directory "path", under the part's file name
// (its last path element), atomically, replacing a file of that name; because nothing is
// buffered, "path" must come before "file" in the form, or be given as ?path=.
//
// Each request uses a connection to the user's storage: the user's idle one when it still
// answers and the configuration has not changed, else a new one; a connection idle for a
// minute is closed.
//
// # Chat
//
// With Config.Chat set (a chat.Hub over NewChatStore), every stream has a chat channel
// ("stream-{id}", created with the stream, private when the stream is, deleted with it:
// chat_channel_id in the stream's JSON; null without chat), and these routes exist (the
// chat package documents the WebSocket protocol, its ordering and its rules):
//
//	GET    /ws/chat                                the chat WebSocket (chat:write)
//	GET    /api/chat/channels                      {"channels": [channel, ...]}
//	POST   /api/chat/channels                      channel (admins)
//	PUT    /api/chat/channels/{id}                 channel (admins; not stream channels)
//	DELETE /api/chat/channels/{id}                 {"success": true} (admins; not general
//	                                               nor stream channels)
//	GET    /api/chat/channels/{id}/messages        {"messages": [...], "has_more"}
//	GET    /api/chat/thread/{id}                   {"messages": [...]}
//
// /ws/chat authenticates like every route (Authorization header or ?token=; there is no
// session cookie); the hub answers 429 past 10 connections per user and 403 for a
// browser Origin other than the server's own (any Origin with --cors). A channel on the
// wire is {"id", "name", "description", "is_default" (1 or 0, as in the reference),
// "is_stream_channel", "stream_id", "visibility" (public, private), "mode" (open,
// readonly), "created_at", "unread_count" (the caller's)}; the list holds the channels
// the caller may see, general first. POST and PUT take name (1-50 lowercase letters,
// digits and hyphens, not starting with "stream-"), description (at most 500
// characters), visibility and mode; a taken name is 409. The messages route is a
// relaycast extension mirroring the DM messages route: newest first, limit (default and
// maximum 100) and before_id (a message id) for paging back. The thread is the reply
// chain ending at message {id}, oldest first, at most 20 messages. Channels and messages
// the caller may not see are 404. Message text is sealed at rest (purpose "chat", the
// channel and message ids as associated data); the hub purges messages after 7 days.
//
// # Secrets
//
// Publish keys (live_...), RTMP tokens (rtmp_...) and API keys (portal_...) are 32 random
// bytes in hex behind their prefix; only their SHA-256 is stored and they are shown once.
// Playback ids (pub_...) are public and stable. The master key (LoadSecretKey) derives the
// JWT signing key, the playback-token HMAC key and the AES-256-GCM keys of Sealer. Relay
// destination keys, which must be recovered to push, are sealed (purpose "relay-keys",
// the stream id as associated data) and opened only for RelayTargets; VOD storage
// secrets likewise (purpose "vod-storage"), opened only to connect and for VODStorage;
// chat messages too (purpose "chat"), opened for their readers. Paths are logged
// with their secret segments (ptk_, live_, ...) redacted.
//
// # Goroutines
//
// New starts the live-state goroutine (bus events to the database and to Subscribe
// callbacks), a janitor (expired tokens, rate-limit buckets) and the closer of idle VOD
// storage connections; Close stops them, waits for them and closes the idle connections.
package control
