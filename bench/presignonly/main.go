// Command presignonly is what a vendor writes in an afternoon from the S3
// documentation instead of a portal: a plain net/http server that presigns
// a GET of one object with aws-sdk-go-v2's standard presigner on every
// request and answers the URL as JSON. No catalog, no license, no ledger.
// scripts/bench.sh compares the portal's S3 download grant with it.
//
//	presignonly -listen 127.0.0.1:8081 -key OBJECT-KEY
//
// The bucket, endpoint, credentials and region come from the environment
// variables of scripts/s3-server.sh (PORTAL_TEST_S3_*); path-style URLs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	key := flag.String("key", "", "object key to presign")
	ttl := flag.Duration("ttl", 15*time.Minute, "URL lifetime")
	flag.Parse()
	env := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			log.Fatalf("presignonly: %s is not set", name)
		}
		return v
	}
	if *key == "" {
		log.Fatal("presignonly: -key is required")
	}
	bucket := env("PORTAL_TEST_S3_BUCKET")
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(env("PORTAL_TEST_S3_REGION")),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			env("PORTAL_TEST_S3_ACCESS_KEY"), env("PORTAL_TEST_S3_SECRET_KEY"), "")))
	if err != nil {
		log.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(strings.TrimRight(env("PORTAL_TEST_S3_ENDPOINT"), "/"))
		o.UsePathStyle = true
	})
	presigner := s3.NewPresignClient(client)

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		req, err := presigner.PresignGetObject(r.Context(), &s3.GetObjectInput{
			Bucket: aws.String(bucket),
			Key:    aws.String(*key),
		}, s3.WithPresignExpires(*ttl))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"url":        req.URL,
			"expires_at": time.Now().Add(*ttl).UTC().Format(time.RFC3339),
		})
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
