package configs

import (
	"strings"
	"testing"
	"time"
)

func TestWebhooksKeys(t *testing.T) {
	cfg, err := Load(LoadOptions{Env: []string{
		"PORTAL_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true", "PORTAL_WEBHOOKS_RETRY_BASE=10ms",
	}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !cfg.Webhooks.AllowPrivateTargets || cfg.Webhooks.RetryBase != 10*time.Millisecond || cfg.Webhooks.RetryMax != time.Hour {
		t.Errorf("webhooks = %+v", cfg.Webhooks)
	}
	for _, env := range []string{"PORTAL_WEBHOOKS_RETRY_BASE=0s", "PORTAL_WEBHOOKS_RETRY_MAX=1ms", "PORTAL_WEBHOOKS_TIMEOUT=-1s"} {
		_, err := Load(LoadOptions{Env: []string{env}})
		if name := strings.ToLower(strings.TrimPrefix(strings.Split(env, "=")[0], "PORTAL_WEBHOOKS_")); err == nil || !strings.Contains(err.Error(), "webhooks."+name) {
			t.Errorf("%s: err = %v, want one naming webhooks.%s", env, err, name)
		}
	}
}
