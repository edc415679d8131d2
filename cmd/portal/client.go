package main

import "errors"

func publish(args []string) error  { return errors.New("publish: not built yet") }
func download(args []string) error { return errors.New("download: not built yet") }
