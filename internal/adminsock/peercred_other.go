//go:build !linux

package adminsock

import (
	"errors"
	"fmt"
	"net"
)

const supported = false

func peerCred(net.Conn) (cred, error) {
	return cred{}, fmt.Errorf("adminsock: peer credentials: %w", errors.ErrUnsupported)
}
