package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/relaycast/relaycast/relay"
)

// options holds every setting of `relaycast serve`. Each field is a flag, an environment
// variable RELAYCAST_<FLAG_NAME> and a key of the optional YAML file given by --config;
// a flag beats the environment, which beats the file, which beats the default.
type options struct {
	Config           string
	DataDir          string
	HTTPAddr         string
	RTMPAddr         string
	RTMPSAddr        string
	RTSPAddr         string
	RTSPSAddr        string
	WebRTCAddr       string
	PublicURL        string
	TLSCert          string
	TLSKey           string
	SecretKey        string
	LogFormat        string
	LogLevel         string
	CORS             bool
	RTMPPlainEnabled bool
	RTMPPlainKeys    bool
	HLSVariant       string
	ReconnectGrace   time.Duration
	RTSPUDPAddr      string
	WebRTCPublicIPs  stringList
	ICEServers       stringList
	OpusBitrate      int
	RelayDialTimeout time.Duration
	RelayMaxBackoff  time.Duration
	VODChunkDuration time.Duration
	VODSpoolLimit    int64
	APIRateLimit     int
}

// stringList is a repeatable flag; each value may also hold several items separated by
// commas (the form an environment variable takes).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *stringList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// newFlagSet declares the flags of `relaycast serve` on o, with their defaults.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&o.Config, "config", "", "optional YAML file whose keys are these flag names")
	fs.StringVar(&o.DataDir, "data-dir", "./data", "directory for the database, keys, certificates and recordings")
	fs.StringVar(&o.HTTPAddr, "http-addr", ":8080", "HTTP listener: API, HLS, WHIP/WHEP, web UI, metrics (empty: off)")
	fs.StringVar(&o.RTMPAddr, "rtmp-addr", ":1935", "plain RTMP ingest listener (empty: off)")
	fs.StringVar(&o.RTMPSAddr, "rtmps-addr", ":1936", "RTMPS ingest listener (empty: off)")
	fs.StringVar(&o.RTSPAddr, "rtsp-addr", ":8554", "RTSP publish and play listener (empty: off)")
	fs.StringVar(&o.RTSPSAddr, "rtsps-addr", ":8322", "RTSPS publish and play listener (empty: off)")
	fs.StringVar(&o.WebRTCAddr, "webrtc-addr", ":8189", "WebRTC ICE port, UDP with ICE-TCP on the same number (empty: WHIP/WHEP off)")
	fs.StringVar(&o.PublicURL, "public-url", "", "base URL of the playback URLs the API returns (default: http://<http-addr host or localhost>:<port>)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "PEM certificate for RTMPS (default: self-signed, generated into the data dir)")
	fs.StringVar(&o.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&o.SecretKey, "secret-key", "", "master key for encryption at rest and token signing (default: generated once into the data dir)")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.IntVar(&o.APIRateLimit, "api-rate-limit", 60, "API requests per minute per user or API key (negative: no limit); login and setup: 10 per minute per IP")
	fs.BoolVar(&o.CORS, "cors", false, "allow cross-origin API requests")
	fs.BoolVar(&o.RTMPPlainEnabled, "rtmp-plain-enabled", true, "accept plain (unencrypted) RTMP publishing at all")
	fs.BoolVar(&o.RTMPPlainKeys, "rtmp-plain-keys", true, "plain RTMP accepts the permanent stream key (false: only single-use rtmp_ tokens)")
	fs.StringVar(&o.HLSVariant, "hls-variant", "lowlatency", "HLS variant: lowlatency, fmp4 or mpegts")
	fs.DurationVar(&o.ReconnectGrace, "reconnect-grace", 30*time.Second, "how long a stream whose publisher dropped waits for it to come back")
	fs.DurationVar(&o.RelayDialTimeout, "relay-dial-timeout", relay.DefaultDialTimeout, "how long a relay waits for its destination to accept the stream before retrying")
	fs.DurationVar(&o.VODChunkDuration, "vod-chunk-duration", 5*time.Minute, "length of the recorded MKV chunks (cut at the next keyframe)")
	fs.Int64Var(&o.VODSpoolLimit, "vod-spool-limit", 0, "most bytes the local recording spool may hold before recording pauses (0: no limit)")
	fs.DurationVar(&o.RelayMaxBackoff, "relay-max-backoff", relay.DefaultMaxBackoff, "longest wait between two attempts of a failing relay (exponential from 250ms, with jitter)")
	fs.StringVar(&o.RTSPUDPAddr, "rtsp-udp-addr", ":8000", "RTP port of RTSP's UDP transport, RTCP on the next port (empty: TCP only)")
	fs.Var(&o.WebRTCPublicIPs, "webrtc-public-ip", "public IP of this host behind a 1:1 NAT, added to WebRTC answers (repeatable)")
	fs.Var(&o.ICEServers, "webrtc-ice-server", "STUN/TURN server for WebRTC clients: stun:host:port or turn:user:pass@host:port?transport=udp (repeatable)")
	fs.IntVar(&o.OpusBitrate, "opus-bitrate", 128000, "bitrate of the AAC to Opus transcoder for WebRTC viewers, bit/s")
	return fs
}

// envName returns the environment variable of a flag: --rtmp-addr is RELAYCAST_RTMP_ADDR.
func envName(flagName string) string {
	return "RELAYCAST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions parses args, then fills every flag not given on the command line from the
// environment (lookupEnv is os.LookupEnv outside tests; a variable set to "" counts, so
// that RELAYCAST_RTMP_ADDR= turns that listener off), then from the YAML file.
func parseOptions(args []string, lookupEnv func(string) (string, bool)) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "usage: relaycast serve [flags]")
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["config"] {
		if v, ok := lookupEnv(envName("config")); ok && v != "" {
			o.Config = v
			set["config"] = true
		}
	}
	var file map[string]any
	if o.Config != "" {
		b, err := os.ReadFile(o.Config)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return nil, fmt.Errorf("config file %s: %w", o.Config, err)
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, fmt.Errorf("config file %s: unknown keys %s", o.Config, strings.Join(unknown, ", "))
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if list, isList := v.([]any); isList {
				for _, item := range list {
					if err := fs.Set(f.Name, fmt.Sprint(item)); err != nil {
						errs = append(errs, fmt.Errorf("config key %s: %w", f.Name, err))
					}
				}
				return
			}
			s := ""
			if v != nil {
				s = fmt.Sprint(v)
			}
			if err := fs.Set(f.Name, s); err != nil {
				errs = append(errs, fmt.Errorf("config key %s: %w", f.Name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch o.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", o.LogFormat)
	}
	switch o.HLSVariant {
	case "lowlatency", "fmp4", "mpegts":
	default:
		return fmt.Errorf("--hls-variant must be lowlatency, fmp4 or mpegts, not %q", o.HLSVariant)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	for _, u := range o.ICEServers {
		if _, err := parseICEServer(u); err != nil {
			return err
		}
	}
	if o.OpusBitrate < 6000 || o.OpusBitrate > 510000 {
		return fmt.Errorf("--opus-bitrate must be between 6000 and 510000, not %d", o.OpusBitrate)
	}
	if o.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	return nil
}
