// Package signal is the WHIP resource model (RFC 9725) that WHEP mirrors: the HTTP
// signaling shared by ingest/whip (publishers) and egress/whep (viewers). It owns the
// endpoint paths, the session table, the HTTP method dispatch, the SDP offer and trickle
// ICE parsing, and the life cycle of a session's peer connection; the protocol packages
// keep only what differs (who may connect, and what flows over the tracks).
//
// # Endpoint
//
// A [Server] serves POST /api/stream/{id}{Config.Suffix} (an application/sdp offer in,
// 201 Created with the answer, a Location resource /api/stream/{id}{Config.Suffix}/{session},
// Accept-Patch and the ICE servers as Link headers), and DELETE (ends the session), PATCH
// (trickled candidates, application/trickle-ice-sdpfrag; an ICE restart gets 422) and
// OPTIONS on the session resource. The server does not trickle: its answer carries all
// its candidates. Errors are JSON {"error","status"}; 404 for paths that are not an
// endpoint or an unknown session, 405 for other methods, 415 for a wrong Content-Type,
// 413 for a body over 128 KiB.
//
// # Sessions
//
// The protocol's Config.Offer handles the POST: it checks the offer (with [ParseOffer])
// and its right to connect, makes a [Session] with [NewSession], admits it with
// [Server.Add] and hands it to [Server.Start], which negotiates through the protocol's
// [Peer], answers the POST and runs the session on a goroutine the Server owns. A session
// ends on DELETE, ICE failure, ICE disconnected for Config.DisconnectTimeout, no ICE
// connection within Config.ConnectTimeout, [Session.End] or [Server.Close]; then its
// Peer's Teardown runs once, and the session leaves the table before [Session.Done] is
// closed. [Server.Close] ends every session and waits for their goroutines.
//
// # Clients
//
// [Client] is the other half of the same exchange, for ingest/whip/whipclient and
// egress/whep/whepclient: it offers a peer connection with all its candidates (no
// trickle), POSTs it, applies the answer, waits for the connection and DELETEs the
// resource on Close. A refusal is a [StatusError] carrying the {"error","status"} body.
// Its errors never contain the endpoint URL, which holds a stream key or a playback
// token. [NewAPI] is the pion API clients (and tests' servers) use by default: loopback
// candidates allowed, no mDNS.
//
// Nothing here runs per packet. The HTTP handlers block only on negotiation (bounded by
// Config.NegotiateTimeout) and on DELETE, which waits for the session's teardown or the
// request's end.
package signal
