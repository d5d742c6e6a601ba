package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/recorder"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
	"github.com/stoa-rtc/stoa/token"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func recordCommand() *command {
	var (
		cf                             clientFlags
		tok, channel, uid, out, region string
		keyFile, secretFile            string
		recipients                     listFlag
		duration                       time.Duration
		s3                             [3]string
	)
	return &command{
		name:    "record",
		summary: "record a channel on your own machine: decrypt with the channel secret, write Ogg/IVF files",
		usage: `stoa record --url URL (--token T | --app-id ID --app-cert CERT) --channel C (--e2ee-secret HEX | --e2ee-secret-file F)
            --out DIR [--uid U] [--age-recipient age1...]... [--duration 20s] [--key FILE] [--region NAME] [--ca FILE]
stoa record verify [--public-key FILE|BASE64] [--allow-incomplete] DIR/<recording-id>/manifest.json

Joins the channel as a hidden participant (never announced to the others; the token must grant Stoa's
join-hidden privilege: build it with --app-cert here, or 'stoa token build --role recorder'), decrypts every
audio and video track with the channel secret, and writes DIR/<recording-id>/<uid>-audio.ogg (Opus) and
<uid>-video.ivf (VP8) as frames arrive, each encrypted with age to every --age-recipient (".age" added) when
given. manifest.json lists every file with its SHA-256 and is signed with the recorder's Ed25519 key (--key,
created if missing; default stoa/recorder-ed25519.pem in the user's configuration directory). Records until
--duration has passed (0: until Ctrl-C). Prints the manifest's path.

'stoa record verify' checks the manifest's signature (against --public-key, the key file's .pub, if given)
and every file's size and digest; it prints "ok" or the first problem and exits 0 or 1.`,
		flags: func(fs *flag.FlagSet) {
			cf.register(fs)
			fs.StringVar(&secretFile, "e2ee-secret-file", "", "read the channel secret (64 hex digits) from this file")
			fs.StringVar(&tok, "token", "", "token granting join hidden (default: built with --app-id and --app-cert)")
			fs.StringVar(&channel, "channel", "", "channel name")
			fs.StringVar(&uid, "uid", "", "the recorder's uid (default: recorder-<random>)")
			fs.StringVar(&out, "out", "", "directory of the recordings")
			fs.Var(&recipients, "age-recipient", "encrypt every file to this age X25519 recipient (repeatable)")
			fs.DurationVar(&duration, "duration", 0, "how long to record (0: until interrupted)")
			fs.StringVar(&keyFile, "key", "", "the recorder's Ed25519 signing key file (PEM; created if missing)")
			fs.StringVar(&region, "region", "", "ask the dispatcher for edges of this region")
			for i, name := range []string{"s3-endpoint", "s3-bucket", "s3-prefix"} {
				fs.StringVar(&s3[i], name, "", "planned: S3-compatible storage is not built yet")
			}
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if len(args) > 0 && args[0] == "verify" {
				return recordVerifyCommand().dispatch(ctx, []string{"stoa", "record", "verify"}, args[1:], env.stdout, env.stderr)
			}
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			if s3 != [3]string{} {
				return usagef("S3 storage is planned, not built yet: record to a local --out directory")
			}
			if cf.url == "" || channel == "" || out == "" {
				return usagef("--url, --channel and --out are required")
			}
			if uid == "" {
				uid = "recorder-" + randomHex(4)
			}
			secret, err := recordSecret(cf.secretHex, secretFile)
			if err != nil {
				return err
			}
			expire := 24 * time.Hour
			if duration > 0 {
				expire = duration + time.Hour
			}
			if tok, err = cf.token(tok, token.RTCOptions{Channel: channel, UID: uid, Role: token.RoleRecorder, Expire: expire}); err != nil {
				return err
			}
			if keyFile == "" {
				dir, err := os.UserConfigDir()
				if err != nil {
					return usagef("--key is required: %v", err)
				}
				keyFile = filepath.Join(dir, "stoa", "recorder-ed25519.pem")
			}
			key, created, err := recorder.LoadOrCreateKey(keyFile)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(env.stderr, "created the recorder key %s (public key %s.pub, %s)\n", keyFile, keyFile,
					recorder.KeyID(key.Public().(ed25519.PublicKey)))
			}
			tlsCfg, err := cf.tlsConfig()
			if err != nil {
				return err
			}
			rec, err := recorder.New(recorder.Config{
				Client: sdk.Config{URL: cf.url, Region: region, AppID: cf.appID, Channel: channel, UID: uid, Token: tok,
					Secret: secret, TLSConfig: tlsCfg},
				Dir: out, Key: key, AgeRecipients: recipients,
				Logger: slog.New(slog.NewTextHandler(env.stderr, nil)),
			})
			if err != nil {
				return err
			}
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			fmt.Fprintf(env.stderr, "recording %q into %s (Ctrl-C to stop)\n", channel, filepath.Dir(rec.ManifestPath()))
			err = rec.Run(ctx)
			if _, statErr := os.Stat(rec.ManifestPath()); statErr == nil {
				fmt.Fprintln(env.stdout, rec.ManifestPath())
			}
			return err
		},
	}
}

// recordSecret reads the channel secret, which a recorder must have (a random one would decrypt nothing).
func recordSecret(hexSecret, file string) (*sframe.Key, error) {
	if (hexSecret == "") == (file == "") {
		return nil, usagef("give the channel secret with exactly one of --e2ee-secret and --e2ee-secret-file")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		hexSecret = strings.TrimSpace(string(b))
		clear(b)
	}
	b, err := hex.DecodeString(hexSecret)
	if err != nil || len(b) != media.SecretSize {
		return nil, usagef("the channel secret must be %d hexadecimal digits", 2*media.SecretSize)
	}
	k := sframe.NewKey(b)
	clear(b)
	return k, nil
}

func recordVerifyCommand() *command {
	var (
		pubKey          string
		allowIncomplete bool
	)
	return &command{
		name:    "verify",
		summary: "check a recording's manifest signature and file digests",
		usage:   `stoa record verify [--public-key FILE|BASE64] [--allow-incomplete] MANIFEST`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pubKey, "public-key", "", "the recorder's public key: its key file's .pub, or base64 (recommended: without it any key's signature is accepted)")
			fs.BoolVar(&allowIncomplete, "allow-incomplete", false, "accept a recording whose recorder stopped before its end, checking what its last manifest lists")
		},
		run: func(_ context.Context, args []string, env *cmdEnv) error {
			rest, err := env.parse(args)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return usagef("give one manifest")
			}
			o := recorder.VerifyOptions{AllowIncomplete: allowIncomplete}
			if pubKey != "" {
				s := pubKey
				if b, err := os.ReadFile(pubKey); err == nil {
					s = string(b)
				}
				if o.PublicKey, err = recorder.ParsePublicKey(s); err != nil {
					return usagef("--public-key: %v", err)
				}
			}
			pub, err := recorder.Verify(rest[0], o)
			if err != nil {
				return err // printed as "stoa: recorder: <the first problem>", exit 1
			}
			fmt.Fprintln(env.stdout, "ok")
			if o.PublicKey == nil {
				fmt.Fprintf(env.stderr, "signed by %s, which was not checked: pass --public-key to pin the recorder's key\n", recorder.KeyID(pub))
			}
			return nil
		},
	}
}
