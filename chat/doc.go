// Package chat is relaycast's chat server: the /ws/chat WebSocket protocol, the registry
// of connections and channels, and the rules of channels and messages (who may see,
// send, edit, delete, react, pin), as the API reference's Chat/Forum section describes
// them. It stores through the Store interface it declares; control satisfies it over the
// database, sealing message text at rest, authenticates the WebSocket request and hands
// the user to [Hub.ServeWS].
//
// # Ownership
//
// A [Hub] owns every connection it serves and one goroutine per connection besides the
// caller's: ServeWS runs the connection's reader on the HTTP handler's goroutine (it
// returns when the connection ends) and starts its writer; the hub also runs a janitor
// that purges messages older than Config.Retention (7 days) every PurgeInterval (1 h).
// [Hub.Close] says goodbye (close code 1001) to every client, stops the janitor and
// waits for all of them.
//
// # Connections
//
// A user has at most Config.MaxConnsPerUser (10) connections; ServeWS answers 429 beyond,
// 403 for a browser Origin other than the request's Host (unless AllowAnyOrigin, the
// server's CORS setting), 503 after Close, with the API's {"error","status"} body. The
// server pings every PingInterval (25 s); a connection that sends nothing, not even a
// pong, for PongWait (60 s) is dropped. Frames are at most 16 KiB. A frame that is not a
// protocol message — binary (close 1003), not a JSON object with a string "type", fields
// of the wrong JSON type (close 1007) — closes that connection only; a well-formed
// message of an unknown type, or a refused request, is answered with
// {"type":"error","message"} and the connection stays.
//
// # Ordering
//
// A connection is in at most one channel at a time: "join" leaves the previous one.
// Every change to a channel (message, edit, delete, reaction, pin, presence) is stored
// and broadcast while holding that channel's lock, so every member receives the
// channel's events in one order, the order they were stored in, each once; message ids
// increase in that order. A joining connection's history is read under the same lock:
// each message reaches it exactly once, in the history or as a later event. Messages to
// one connection (its join replies, errors) are queued in the order they were produced.
// There is no order between different channels.
//
// # Slow clients
//
// Nothing in the hub waits for a client. Each connection has a bounded send queue
// (Config.SendQueue, 256 messages) drained by its writer; a message that finds the
// queue full disconnects that client at once (its socket is closed, without a close
// frame, which it would not read either). The slow client is at fault: the others lose
// nothing, the drop is counted (Stats.SlowDisconnects,
// relaycast_chat_disconnects_total{reason="slow"}) and logged at most once per 10 s. A
// write that stalls for WriteTimeout (10 s) also drops the connection. Each event is
// encoded and framed once and shared by every member's queue.
//
// # Rules
//
// Messages are 1-2000 characters (trimmed); a user sends at most 5 per 5 s over all
// their connections (RateLimit, RateWindow), beyond which the message is refused with
// "Slow down! You're sending messages too fast.". Authors edit their own messages for
// 5 minutes (EditWindow) and delete them at any time; a channel's moderators — admins,
// moderators, and the channel's owner (a stream's owner for the stream's channel) —
// delete any message and pin (at most 50 per channel). Reactions toggle, at most 20 per
// user per message, emoji of 1-32 bytes. Operations on a message are made from the
// channel it is in (join it first). Private channels are seen and joined by their owner
// and staff only; read-only channels take messages from moderators only.
//
// Each stream has a channel named "stream-{id}" (StreamChannelName), created with the
// stream, private when the stream is, deleted with it; "general" is created by New.
// Admins create, rename and delete other channels.
//
// # Protocol (relaycast extensions to the reference)
//
// Server events carry "channel" (its name) besides the reference's fields. A message
// ("message" event, history entries, REST) is {"id", "channel_id", "channel", "user_id",
// "username", "nickname", "role", "anonymous", "avatar", "message", "reply_to",
// "reply_preview" (the first 100 characters of the parent; absent when it is gone),
// "created_at", "edited_at", "reactions": [{"emoji","count","user_ids"}]}. "history" has
// "has_more"; the client message {"type":"history","channel","before_id","limit"} pages
// back (at most 100, oldest first within a page, answered with "before_id"). On connect,
// and after each mark_read to every connection of the user, the server sends
// {"type":"unread_counts","counts":{channel name: messages by others after the read
// position}}. channel_info adds "id", "is_stream_channel", "stream_id", "visibility",
// "mode" and "can_moderate"; user_joined and user_left add "user_id".
package chat
