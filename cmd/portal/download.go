package main

import "errors"

func download(args []string) error { return errors.New("download: not built yet") }
