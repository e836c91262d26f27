package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// Heartbeats. The upstream agent does not send them; forks with dynamic profiling (e.g. Pinterest's) post
// plain JSON every 30 s to POST /api/metrics/heartbeat with "Authorization: Bearer <token>":
//
//	{"ip_address", "hostname", "service_name", "last_command_id", "status", "timestamp"}
//
// and expect 200 {"success": true, "message": "…", "profiling_command": null | {…}, "command_id": …}.
// Flamestream records the host as alive (table agent_heartbeats: first/last seen, status, last command)
// and issues no remote commands: profiling_command is always null. Command completion reports
// (POST /api/metrics/command_completion) are recorded as the host's last command.

type heartbeat struct {
	IPAddress     string  `json:"ip_address"`
	Hostname      string  `json:"hostname"`
	ServiceName   string  `json:"service_name"`
	LastCommandID *string `json:"last_command_id"`
	Status        string  `json:"status"`
	CommandID     string  `json:"command_id"`
}

// contextStore bounds a server-side write and keeps it going if the client hangs up.
func contextStore(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// readHeartbeat authenticates a heartbeat-style request and decodes its body.
func (s *Server) readHeartbeat(w http.ResponseWriter, r *http.Request) (heartbeat, error) {
	var hb heartbeat
	tok, err := s.checkToken(r.Context(), logKey(r))
	if err != nil {
		return hb, err
	}
	if tok.Kind != pgdb.KindAgent {
		return hb, fail(http.StatusForbidden, "this API key may not send heartbeats", errors.New("it is a read token"))
	}
	_, plain, err := s.readBody(w, r, false)
	if err != nil {
		return hb, err
	}
	if err := json.Unmarshal(plain, &hb); err != nil {
		return hb, fail(http.StatusBadRequest, "body is not valid JSON", err)
	}
	if hb.ServiceName == "" {
		hb.ServiceName = r.Header.Get(HeaderServiceName)
	}
	if hb.ServiceName == "" {
		hb.ServiceName = tok.Service
	}
	if hb.ServiceName == "" || hb.Hostname == "" {
		return hb, fail(http.StatusBadRequest, "missing field", errors.New("service_name and hostname are required"))
	}
	if err := checkService(hb.ServiceName); err != nil {
		return hb, err
	}
	if err := checkName("hostname", hb.Hostname); err != nil {
		return hb, err
	}
	hb.IPAddress, hb.Status, hb.CommandID = cleanText(hb.IPAddress), cleanText(hb.Status), cleanText(hb.CommandID)
	if hb.LastCommandID != nil {
		c := cleanText(*hb.LastCommandID)
		hb.LastCommandID = &c
	}
	if !tok.AllowsService(hb.ServiceName) {
		return hb, fail(http.StatusForbidden, "API key is not valid for this service", fmt.Errorf("service %q", hb.ServiceName))
	}
	return hb, nil
}

func (s *Server) postHeartbeat(w http.ResponseWriter, r *http.Request) error {
	hb, err := s.readHeartbeat(w, r)
	if err != nil {
		return err
	}
	h := pgdb.Heartbeat{Service: hb.ServiceName, Hostname: hb.Hostname, IPAddress: hb.IPAddress, Status: hb.Status}
	if hb.LastCommandID != nil {
		h.LastCommandID = *hb.LastCommandID
	}
	ctx, cancel := contextStore(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	if err := s.meta.RecordHeartbeat(ctx, h, time.Now().UTC()); err != nil {
		return metadataFailed(err)
	}
	s.metrics.heartbeats.Inc()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Heartbeat received",
		"profiling_command": nil, "command_id": nil})
	return nil
}

func (s *Server) postCommandCompletion(w http.ResponseWriter, r *http.Request) error {
	hb, err := s.readHeartbeat(w, r)
	if err != nil {
		return err
	}
	if hb.CommandID == "" {
		return fail(http.StatusBadRequest, "missing field", errors.New("command_id is required"))
	}
	ctx, cancel := contextStore(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	err = s.meta.RecordHeartbeat(ctx, pgdb.Heartbeat{Service: hb.ServiceName, Hostname: hb.Hostname,
		Status: "command " + hb.Status, LastCommandID: hb.CommandID}, time.Now().UTC())
	if err != nil {
		return metadataFailed(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Command completion recorded"})
	return nil
}
