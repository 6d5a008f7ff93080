package xmpp

import "net"

func (s *Server) serveInbound(conn net.Conn) { conn.Close() }
