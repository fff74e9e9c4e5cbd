// Package ogg reads Ogg streams (RFC 3533) page by page: the container of Opus files
// (RFC 7845) and of ffmpeg's Opus output. It is shared by egress/whep, whose AAC→Opus
// transcoder reads ffmpeg's Ogg output from a pipe, and by whipclient, which reads Ogg
// Opus files to publish.
//
// The reader checks every page's CRC, resynchronizes after corrupt input, joins packets
// that span pages and serves one logical stream. It never panics on bad input and
// allocates only for the packets it returns. It is not safe for concurrent use.
package ogg
