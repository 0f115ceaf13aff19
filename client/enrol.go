package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// ErrWiped is returned (beside syncproto.ErrRevoked) by Sync and Run once
// the server said this device was revoked and the replica has been wiped.
var ErrWiped = errors.New("the replica was wiped: this device's access was withdrawn")

// Enrol exchanges a one-time enrolment code, from an administrator, for
// this device's token, which the replica keeps: later syncs need no token
// in Options. It needs the server. A code unknown, used or expired is an
// error wrapping syncproto.ErrUnauthorized.
func (c *Client) Enrol(ctx context.Context, code string) error {
	c.roundMu.Lock()
	defer c.roundMu.Unlock()
	if c.opts.Server == "" {
		return fmt.Errorf("enrol: %w", syncproto.Errorf(syncproto.CodeUnreachable, "no server configured"))
	}
	ws, _, err := c.dial(ctx, code)
	if err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	ws.Close()
	return nil
}

// token returns the token to present: the one in Options, or the one
// enrolment gave.
func (c *Client) token(ctx context.Context) (string, error) {
	if c.opts.Token != "" {
		return c.opts.Token, nil
	}
	m, err := meta(ctx, c.db.Reader, "token")
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return m["token"], nil
}

// wipeIfRevoked wipes the replica when err says this device was revoked,
// and returns err, wrapping ErrWiped too once the replica is wiped.
func (c *Client) wipeIfRevoked(ctx context.Context, err error) error {
	if syncproto.ErrorCode(err) != syncproto.CodeRevoked {
		return err
	}
	if werr := c.wipe(context.WithoutCancel(ctx)); werr != nil {
		c.log.Error("wipe revoked replica", "err", werr)
		return err
	}
	c.log.Warn("this device was revoked: the replica has been wiped")
	return fmt.Errorf("%w: %w", err, ErrWiped)
}

// wipe erases everything the replica holds — records, queued and refused
// writes, conflicts, cursors, the token — gives it a new node identity
// (the old one stays bound to the revoked device), and compacts the file
// so the erased data does not linger in free pages.
func (c *Client) wipe(ctx context.Context) error {
	err := c.inTx(ctx, sqlitedb.SyncFull, func(tx *sqlitedb.Tx) error {
		for _, table := range []string{"replica_records", "outbox_bodies", "outbox", "rejected", "conflicts", "cursors"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table); err != nil {
				return fmt.Errorf("wipe %s: %w", table, err)
			}
		}
		// Their definitions are in meta. (With the records gone, quickly.)
		if err := buildDeferredIndexes(ctx, tx); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM meta"); err != nil {
			return fmt.Errorf("wipe meta: %w", err)
		}
		node := syncproto.NewNode()
		if err := setMeta(ctx, tx, "node", node); err != nil {
			return err
		}
		if err := setMeta(ctx, tx, "wiped", strconv.FormatInt(c.opts.Now().UnixMilli(), 10)); err != nil {
			return err
		}
		c.node = node
		c.clock = syncproto.NewClock(node, c.opts.Now)
		return nil
	})
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.db.Writer.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("wipe: vacuum: %w", err)
	}
	// The old pages may still be in the WAL: copy it and empty it.
	if err := c.db.Checkpoint(ctx, "TRUNCATE"); err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	return nil
}
