package taskwire

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnectionSettings are how a process connects to NATS: the JSON of
// TASKWIRE_NATS_SETTINGS, as sdk/nats/connection-settings.ts defines it.
// Secrets (password, token, nkeySeed) are references, {"env": NAME} or
// {"file": PATH}, so that they never travel in the environment's JSON.
type ConnectionSettings struct {
	// Servers are URLs; credentials in a URL are used as user/password or token.
	Servers        stringList `json:"servers"`
	InboxPrefix    string     `json:"inboxPrefix"`
	Name           string     `json:"name"`
	User           string     `json:"user"`
	Password       *Secret    `json:"password"`
	Token          *Secret    `json:"token"`
	NkeySeed       *Secret    `json:"nkeySeed"`
	Creds          string     `json:"creds"`
	TLS            *TLS       `json:"tls"`
	PingIntervalMs int        `json:"pingIntervalMs"`
	JetStream      *struct {
		Domain    string `json:"domain"`
		APIPrefix string `json:"apiPrefix"`
	} `json:"jetstream"`
}

// TLS names PEM files; setting it (even to {}) requires TLS.
type TLS struct {
	CA             string `json:"ca"`
	Cert           string `json:"cert"`
	Key            string `json:"key"`
	ServerName     string `json:"serverName"`
	HandshakeFirst bool   `json:"handshakeFirst"`
}

// Secret is where a secret is read from: an environment variable or a file
// (its content, trimmed). A plain JSON string is the secret itself.
type Secret struct {
	Env   string `json:"env"`
	File  string `json:"file"`
	value string
}

// UnmarshalJSON takes {"env": NAME}, {"file": PATH} or a string.
func (s *Secret) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &s.value)
	}
	type reference Secret
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode((*reference)(s)); err != nil || (s.Env == "") == (s.File == "") {
		return errors.New(`must be {"env": NAME} or {"file": PATH}`)
	}
	return nil
}

// resolve reads the secret; errors name key and the variable or path, never the value.
func (s *Secret) resolve(key string) (string, error) {
	switch {
	case s.Env != "":
		value := os.Getenv(s.Env)
		if value == "" {
			return "", fmt.Errorf("NATS %s: environment variable %s is not set", key, s.Env)
		}
		return value, nil
	case s.File != "":
		text, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("NATS %s: cannot read %s", key, s.File)
		}
		value := strings.TrimSpace(string(text))
		if value == "" {
			return "", fmt.Errorf("NATS %s: %s is empty", key, s.File)
		}
		return value, nil
	}
	return s.value, nil
}

// stringList is a JSON string or array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(data []byte) error {
	var one string
	if json.Unmarshal(data, &one) == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return errors.New("servers must be a URL or a list of URLs")
	}
	*l = many
	return nil
}

// ParseConnectionSettings reads TASKWIRE_NATS_SETTINGS' JSON, refusing keys it does not know.
func ParseConnectionSettings(data []byte) (*ConnectionSettings, error) {
	var settings ConnectionSettings
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&settings); err != nil {
		return nil, fmt.Errorf("NATS settings: %w", err)
	}
	return &settings, nil
}

// natsOptions are nats.go's options for the settings: secrets read, files loaded.
func (s *ConnectionSettings) natsOptions() ([]nats.Option, error) {
	opts := []nats.Option{nats.MaxReconnects(-1)}
	if s.Name != "" {
		opts = append(opts, nats.Name(s.Name))
	}
	if s.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.InboxPrefix))
	}
	ping := 10 * time.Second
	if s.PingIntervalMs > 0 {
		ping = time.Duration(s.PingIntervalMs) * time.Millisecond
	}
	opts = append(opts, nats.PingInterval(ping), nats.MaxPingsOutstanding(2))
	if (s.User == "") != (s.Password == nil) {
		return nil, errors.New("NATS user and password: set both or neither")
	}
	if s.User != "" {
		password, err := s.Password.resolve("password")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(s.User, password))
	}
	if s.Token != nil {
		token, err := s.Token.resolve("token")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Token(token))
	}
	if s.NkeySeed != nil {
		seed, err := s.NkeySeed.resolve("nkeySeed")
		if err != nil {
			return nil, err
		}
		pair, err := nkeys.FromSeed([]byte(seed))
		if err != nil {
			return nil, errors.New("NATS nkeySeed: not an nkey seed")
		}
		public, err := pair.PublicKey()
		if err != nil {
			return nil, errors.New("NATS nkeySeed: not a user seed")
		}
		opts = append(opts, nats.Nkey(public, pair.Sign))
	}
	if s.Creds != "" {
		if _, err := os.Stat(s.Creds); err != nil {
			return nil, fmt.Errorf("NATS creds: cannot read %s", s.Creds)
		}
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.TLS != nil {
		config, err := s.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(config))
		if s.TLS.HandshakeFirst {
			opts = append(opts, nats.TLSHandshakeFirst())
		}
	}
	return opts, nil
}

func (t *TLS) config() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("NATS tls.ca: cannot read %s", t.CA)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("NATS tls.ca: %s holds no PEM certificate", t.CA)
		}
		config.RootCAs = pool
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, errors.New("NATS tls.cert and tls.key: set both or neither")
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("NATS tls.cert %s with tls.key %s: cannot load them", t.Cert, t.Key)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// serverURLs are the settings' servers joined as nats.Connect takes them.
func (s *ConnectionSettings) serverURLs() string {
	if len(s.Servers) == 0 {
		return nats.DefaultURL
	}
	return strings.Join(s.Servers, ",")
}

// redactURLs are URLs without the credentials they may carry, for logs.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			scheme := ""
			if sep := strings.Index(u, "://"); sep >= 0 && sep < at {
				scheme = u[:sep+3]
			}
			parts[i] = scheme + u[at+1:]
		}
	}
	return strings.Join(parts, ", ")
}
