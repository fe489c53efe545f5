// Command argocd-health evaluates resource health exactly as Argo CD does.
//
// Why a program of ours: Argo CD's health assessment lives in its Go module
// (github.com/argoproj/argo-cd/v3), not in a command that can be installed on its own.
// This wrapper follows `argocd admin settings resource-overrides health` step by step:
// Argo CD's settings manager reads the given argocd-cm ConfigMap (so the shipped patch
// file, its key and its YAML are parsed by Argo CD's own code), and gitops-engine's
// GetResourceHealth runs the configured Lua script in Argo CD's gopher-lua sandbox.
// Unlike the admin command it reads many objects from one process: one JSON object per
// line on stdin, one JSON result per line on stdout ({"status", "message"} or {"error"}).
//
//	argocd-health charts/kubetune/argocd/argocd-cm.yaml < objects.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"

	healthutil "github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// overrides reads an argocd-cm ConfigMap file the way the admin command does: into a
// fake clientset, then through Argo CD's settings manager.
func overrides(ctx context.Context, path string) (map[string]v1alpha1.ResourceOverride, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name:      name,
			Namespace: "default",
			Labels:    map[string]string{"app.kubernetes.io/part-of": "argocd"},
		}
	}
	cm.ObjectMeta = meta(common.ArgoCDConfigMapName)
	secret := &corev1.Secret{
		ObjectMeta: meta(common.ArgoCDSecretName),
		Data:       map[string][]byte{"admin.password": []byte("test"), "server.secretkey": []byte("test")},
	}
	manager := settings.NewSettingsManager(ctx, fake.NewClientset(secret, &cm), "default")
	if err := manager.ResyncInformers(); err != nil {
		return nil, err
	}
	return manager.GetResourceOverrides()
}

func assess(line []byte, configured lua.ResourceHealthOverrides) result {
	var obj unstructured.Unstructured
	if err := json.Unmarshal(line, &obj.Object); err != nil {
		return result{Error: "not a JSON object: " + err.Error()}
	}
	health, err := healthutil.GetResourceHealth(&obj, configured)
	switch {
	case err != nil:
		return result{Error: err.Error()}
	case health == nil:
		gvk := obj.GroupVersionKind()
		return result{Error: fmt.Sprintf("no health check for %s/%s", gvk.Group, gvk.Kind)}
	default:
		return result{Status: string(health.Status), Message: health.Message}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health ARGOCD_CM_YAML < objects.jsonl")
		os.Exit(2)
	}
	log.SetLevel(log.WarnLevel)
	configured, err := overrides(context.Background(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		if err := out.Encode(assess(in.Bytes(), configured)); err != nil {
			fmt.Fprintln(os.Stderr, "argocd-health:", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}
