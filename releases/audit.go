package releases

// Every change the catalog makes is recorded in the audit log (package
// audit) in the transaction that makes it, so each call needs an actor in
// its context (audit.WithActor, or audit/caller.NewContext at a door that
// authenticated a caller); without one the call fails with audit.ErrNoActor
// and changes nothing. A call that changes nothing (publishing a published
// release, an edit to the same values) writes no record.
//
// Records hold the public form of products, releases and artifacts (no
// signing key, object key or upload id). Targets:
//
//	product/<slug>
//	release/<slug>/<version>
//	artifact/<slug>/<version>/<filename>
//
// Actions: product.create, product.update, product.update_keys,
// product.delete, release.create, release.update, release.publish,
// release.yank, release.unyank, release.delete, and the artifact actions
// its callers name through Change (artifact.create, artifact.update,
// artifact.uploaded, artifact.failed, artifact.delete).

// Change names the audit record of an Update: Action ("<object>.<verb>")
// on the release, or, when Filename is set, on that artifact of the
// release, recorded with the artifact before and after.
type Change struct {
	Action   string
	Filename string
}

// ProductTarget, ReleaseTarget and ArtifactTarget are the audit targets of
// the catalog's objects.
func ProductTarget(slug string) string { return "product/" + slug }

func ReleaseTarget(slug, version string) string { return "release/" + slug + "/" + version }

func ArtifactTarget(slug, version, filename string) string {
	return "artifact/" + slug + "/" + version + "/" + filename
}
