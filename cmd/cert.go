package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/csr"
	"github.com/xgw-gateway/xgw/report"
)

// csrFile is the request's name in --out-dir; the key takes tls.key's name.
const csrFile = "xgw.csr"

type certRequestOptions struct {
	*globalOptions
	keyType    string
	rsaBits    int
	rsaBitsSet bool // --rsa-bits given: refused with --key-type ecdsa
	outDir     string
	force      bool
	template   string
	ca         string
}

func newCertCmd(s *Streams, g *globalOptions, runF func(context.Context, *certRequestOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "The gateway's certificate: make a key and a request for a CA",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCertRequestCmd(s, g, runF))
	return cmd
}

func newCertRequestCmd(s *Streams, g *globalOptions, runF func(context.Context, *certRequestOptions) error) *cobra.Command {
	o := &certRequestOptions{globalOptions: g}
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Make a private key and a certificate request (CSR) from the config",
		Long: `Makes a private key and a PKCS#10 certificate request for the gateway, from the
config file, and prints how to submit it to an Active Directory CA (AD CS)
from a machine outside the domain, or to any other CA.

The request asks for:
  Subject CN   xmpp.internal_fqdn (the Edge requires CN = the FQDN it dials)
  DNS names    xmpp.internal_fqdn, xmpp.external_fqdn and every sip.domains entry
               (XMPP peers verify the SIP domain)
  Key usages   Server Authentication and Client Authentication (mutual TLS with
               the Edge, TLS to XMPP peers, SASL EXTERNAL); Digital Signature,
               and Key Encipherment for RSA keys

The key (PKCS#8 PEM, mode 0600) is named like tls.key and the request is
xgw.csr, both in --out-dir (default: the config file's folder). An existing key
is never replaced without --force.

Exit codes: 0 written, 1 a key is already there or a file could not be
written, 2 bad flags or config (nothing was written).`,
		Example: `  # RSA 3072 next to the config: /etc/xgw/key.pem and /etc/xgw/xgw.csr
  xgw cert request --config /etc/xgw/xgw.yaml

  # ECDSA P-256, written elsewhere (for a renewal, keeping the key in service)
  xgw cert request --key-type ecdsa --out-dir /root/xgw-renewal

  # Print the certreq line for your CA and template
  xgw cert request --ca 'dc1.litware.com\Litware Issuing CA' --template XGWServer

  # Replace the key in place (the certificate in service stops matching it)
  xgw cert request --force`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.rsaBitsSet = c.Flags().Changed("rsa-bits")
			if runF != nil {
				return runF(c.Context(), o)
			}
			return runCertRequest(s, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyType, "key-type", csr.KeyRSA, "rsa or ecdsa (P-256)")
	f.IntVar(&o.rsaBits, "rsa-bits", csr.DefaultRSABits, fmt.Sprintf("RSA key size, %d to %d", csr.MinRSABits, csr.MaxRSABits))
	f.StringVar(&o.outDir, "out-dir", "", "folder for the key and the request (default: the config file's folder)")
	f.BoolVar(&o.force, "force", false, "replace an existing key")
	f.StringVar(&o.template, "template", "XGWServer", "AD CS certificate template name, for the printed certreq command")
	f.StringVar(&o.ca, "ca", "", `AD CS "HOST\CA Name", for the printed certreq command`)
	return cmd
}

func runCertRequest(s *Streams, o *certRequestOptions) error {
	spec, err := o.keySpec()
	if err != nil {
		return usageError(err)
	}
	cfg, err := config.LoadFile(o.path(s))
	if err != nil {
		return usageError(err)
	}
	outDir := o.outDir
	if outDir == "" {
		outDir = filepath.Dir(cfg.File)
	}
	if fi, err := os.Stat(outDir); err != nil || !fi.IsDir() {
		return usageError(fmt.Errorf("--out-dir %s: found no folder there, expected an existing folder; fix: create it first", outDir))
	}
	keyPath := filepath.Join(outDir, filepath.Base(cfg.TLS.Key))
	csrPath := filepath.Join(outDir, csrFile)
	// Refuse before spending seconds on an RSA key; WriteKey checks again
	// atomically.
	if _, err := os.Lstat(keyPath); err == nil && !o.force {
		return &exitError{code: report.ExitFailed, msg: fmt.Sprintf("%s: %v; fix: pass --force to replace it (its certificate stops working), or choose another --out-dir", keyPath, csr.ErrKeyExists)}
	}

	names := csr.NamesFor(cfg)
	res, err := csr.Generate(names, spec)
	if err != nil {
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	if err := csr.WriteKey(keyPath, res.KeyPEM, o.force); err != nil {
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	if err := os.WriteFile(csrPath, res.CSRPEM, 0o644); err != nil {
		if !o.force {
			os.Remove(keyPath) // a key without its request is of no use
		}
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}

	ca := o.ca
	if ca == "" {
		ca = `CAHOST\CA Name`
	}
	return nextSteps.Execute(s.Out, stepsData{
		Key:          keyPath,
		KeySpec:      spec.String(),
		CSR:          csrPath,
		CSRName:      csrFile,
		Cert:         filepath.Join(outDir, filepath.Base(cfg.TLS.Cert)),
		ConfigKey:    cfg.Path(cfg.TLS.Key),
		Names:        names,
		KeyUsage:     keyUsageText(spec),
		Template:     o.template,
		CA:           ca,
		KeyMisplaced: filepath.Clean(keyPath) != filepath.Clean(cfg.Path(cfg.TLS.Key)),
	})
}

// keySpec turns the flags into a key spec, naming the flag at fault.
func (o *certRequestOptions) keySpec() (csr.KeySpec, error) {
	spec := csr.KeySpec{Type: o.keyType, RSABits: o.rsaBits}
	switch {
	case o.keyType == csr.KeyECDSA && o.rsaBitsSet:
		return spec, errors.New("--rsa-bits: found it with --key-type ecdsa, expected it with --key-type rsa only; fix: drop --rsa-bits (ECDSA keys are P-256)")
	case o.keyType != csr.KeyRSA && o.keyType != csr.KeyECDSA:
		return spec, fmt.Errorf("--key-type: %w", spec.Validate())
	case o.keyType == csr.KeyRSA:
		if err := csr.CheckRSABits(o.rsaBits); err != nil {
			return spec, fmt.Errorf("--rsa-bits %d: %w", o.rsaBits, err)
		}
	}
	return spec, nil
}

// keyUsageText mirrors csr.Generate: Key Encipherment for RSA only.
func keyUsageText(spec csr.KeySpec) string {
	if spec.Type == csr.KeyECDSA {
		return "Digital Signature"
	}
	return "Digital Signature, Key Encipherment"
}

type stepsData struct {
	Key, KeySpec, CSR, CSRName, Cert, ConfigKey string
	Names                                       csr.Names
	KeyUsage, Template, CA                      string
	KeyMisplaced                                bool
}

func (d stepsData) SANs() string {
	all := append([]string(nil), d.Names.DNSNames...)
	for _, ip := range d.Names.IPAddresses {
		all = append(all, ip.String())
	}
	return strings.Join(all, ", ")
}

// nextSteps is printed after the files are written. certreq's -accept is
// named only to say why it does not apply: it pairs a certificate with a key
// that certreq -new made in the Windows store, and this key is a file here.
var nextSteps = template.Must(template.New("steps").Parse(`Wrote {{.Key}}  private key, {{.KeySpec}}, mode 0600: it never leaves this machine
Wrote {{.CSR}}  certificate request:
  Subject     CN={{.Names.CommonName}}
  Names       {{.SANs}}
  Requested   Server Authentication + Client Authentication; {{.KeyUsage}}
{{- if .KeyMisplaced}}
Note: the config's tls.key is {{.ConfigKey}}; move the key there or change tls.key.
{{- end}}

Check the request:
  openssl req -in {{.CSR}} -noout -text -verify

Submit it to an AD CS (Active Directory Certificate Services) from a machine outside the domain
  The request is a file: this machine needs neither domain membership nor a path to the CA.
  1. The template. AD CS takes the key usages from the template, not from the request, and the
     stock "Web Server" template issues Server Authentication only: the Edge then refuses the
     gateway as a client. Have a CA admin duplicate "Web Server" (certtmpl.msc), add Client
     Authentication under Extensions > Application Policies, keep Subject Name "Supply in the
     request", grant Enroll to the account that submits, name it {{.Template}}, and publish it
     (certsrv.msc > Certificate Templates > New > Certificate Template to Issue).
     "Computer" has both usages but builds the subject from the domain's computer account, so it
     does not fit a machine outside the domain.
  2. Copy {{.CSRName}} to a Windows machine in the domain (or, on one outside it, first open a shell
     with domain credentials: runas /netonly /user:DOMAIN\user cmd) and submit it:
       certreq -submit -config "{{.CA}}" -attrib "CertificateTemplate:{{.Template}}" {{.CSRName}} xgw.cer xgw-chain.p7b
     -config is "CA host\CA name" (certutil -config - -ping lists them); the template is its
     name without spaces, not its display name. If a CA manager must approve, certreq prints a
     RequestId; once approved:
       certreq -retrieve -config "{{.CA}}" RequestId xgw.cer xgw-chain.p7b
     Without certreq: paste {{.CSRName}} into https://CAHOST/certsrv > Request a certificate >
     advanced certificate request, choose the template, download Base 64 encoded.
  3. Skip certreq -accept: it installs the certificate next to a key that certreq -new made in the
     Windows store, and this key is {{.Key}} here. Convert on this machine instead:
       openssl x509 -in xgw.cer -out {{.Cert}}
     (a DER .cer, from certreq -binary or "DER encoded": openssl x509 -inform der -in xgw.cer -out {{.Cert}})
     If an intermediate CA issued it, append the intermediates after the certificate, not the root:
       openssl pkcs7 -print_certs -in xgw-chain.p7b    (copy the intermediate CA's block)

Submit it to any other CA
  Upload or paste {{.CSRName}}; ask for a TLS server and client certificate (serverAuth and
  clientAuth) with the names above. Save it as PEM, followed by any intermediates, in
  {{.Cert}}.

Then check the result:
  xgw check --only tls.cert,tls.name,tls.key,tls.eku
`))
