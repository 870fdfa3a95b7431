// Command ferretdb-embedded serves the MongoDB wire protocol from FerretDB's
// PostgreSQL handler. It embeds the ferretdb package because `go install` of
// FerretDB's own command panics on a missing build/version/version.txt.
//
// The PostgreSQL URL takes pgx pool settings as query parameters, e.g.
// postgres://postgres@127.0.0.1:37432/ferretdb?pool_max_conns=150
package main

import (
	"context"
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL of FerretDB's database (required)")
	flag.Parse()
	if *pgURL == "" {
		log.Fatal("-postgresql-url is required")
	}
	u, err := url.Parse(*pgURL)
	if err != nil {
		log.Fatalf("-postgresql-url: %v", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Printf("ferretdb listening on %s, PostgreSQL at %s%s", *listen, u.Host, u.Path)
	f.Run(ctx)
}
