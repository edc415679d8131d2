//go:build linux

package adminsock

import (
	"fmt"
	"net"
	"syscall"
)

// supported reports whether this system can tell who is on the other end of
// a unix socket.
const supported = true

// peerCred returns the uid and pid of the process that connected c, as the
// kernel recorded them at connect (SO_PEERCRED).
func peerCred(c net.Conn) (cred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return cred{}, fmt.Errorf("adminsock: %T is not a unix connection", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return cred{}, err
	}
	var uc2 *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		uc2, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return cred{}, err
	}
	if serr != nil {
		return cred{}, fmt.Errorf("adminsock: SO_PEERCRED: %w", serr)
	}
	return cred{uid: uc2.Uid, pid: uc2.Pid}, nil
}
