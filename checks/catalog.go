package checks

// All returns the catalog in display order. Prerequisites come before the
// checks that require them. IDs are stable: scripts and CI depend on them.
func All() []Check {
	return []Check{
		configCheck,
		fqdnCheck,
		bindSIPCheck,
		bindXMPPCheck,
		dnsSRVCheck,
		dnsACheck,
		dnsInternalCheck,
		hostsEntryCheck,
		tlsCertCheck,
		tlsNameCheck,
		tlsKeyCheck,
		tlsEKUCheck,
		netXMPPCheck,
		netHairpinCheck,
		edgeCheck,
		xmppPeerCheck,
	}
}
