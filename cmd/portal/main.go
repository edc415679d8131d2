// Command portal is the software distribution portal: the server and the
// command-line clients for administrators, publishers and customers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `portal: a self-hosted software distribution portal

Usage:
  portal serve [--config FILE] [--listen ADDR] [--data-dir DIR]
  portal token create --role admin|publisher [--product P]... [--name N] [--config FILE] [--data-dir DIR]
  portal publish FILE... --product P --version V [--channel C] [--notes FILE] [--platform OS --arch ARCH] [--publish]
                 [--sparkle-signature NAME=BASE64]... [--url URL] [--token TOKEN]
  portal download --product P [--version V|latest] [--channel C] --platform OS --arch ARCH [-o FILE|DIR]
                 [--url URL] [--license KEY | --token TOKEN]
  portal keys seal [--config FILE] [--data-dir DIR]
  portal keys rotate --product P [--activate] [--json] [--config FILE] [--data-dir DIR]
  portal config            print the documented default configuration

Client commands read PORTAL_URL, PORTAL_TOKEN and PORTAL_LICENSE (or flags).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(args)
	case "token":
		err = token(args)
	case "keys":
		err = keys(args)
	case "publish":
		err = publish(args)
	case "download":
		err = download(args)
	case "config":
		err = printConfig()
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "portal: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the flag package has printed the command's flags
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "portal: %v\n", err)
		os.Exit(1)
	}
}
