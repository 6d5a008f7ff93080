-- written by xgw internal/lab for b.test
data_path = "/lab/data"
pidfile = "/lab/prosody.pid"
certificates = "/lab"
log = { { levels = { min = "debug" }, to = "file", filename = "/lab/prosody.log" } }
interfaces = { "127.0.1.2" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
plugin_paths = { "/lab/plugins" }
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "lab_dialback_only" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = true
s2s_allow_encryption = true
s2s_timeout = 10
ssl = { certificate = "/lab/cert.pem", key = "/lab/key.pem", cafile = "/lab/trust-ca.pem" }
c2s_timeout = 60
VirtualHost "b.test"
	ssl = { certificate = "/lab/cert.pem", key = "/lab/key.pem", cafile = "/lab/trust-ca.pem" }
