//go:build race

package crash

// raceEnabled: the binary under test is built with -race too, so a data
// race in the server fails the crash test, and the build reuses the
// packages the test build compiled.
const raceEnabled = true
