// Command deploycheck validates meetings-cdc deployment artefacts offline.
//
//	deploycheck compose FILE...   load each compose file as `docker compose` would:
//	                              the compose specification's JSON schema (embedded
//	                              in compose-go), interpolation and model checks
//	deploycheck k8s FILE          a multi-document YAML stream (kustomize output):
//	                              Prometheus operator kinds are decoded strictly
//	                              into the operator's own Go types (unknown or
//	                              mistyped fields fail), and every pod template is
//	                              evaluated against the Restricted pod security
//	                              standard by the upstream pod-security-admission
//	                              library
//
// It prints one JSON line per document it checked and exits 1 on any failure.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

type report struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Checks  []string `json:"checks"`
	Problem string   `json:"problem,omitempty"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: deploycheck compose FILE... | deploycheck k8s FILE")
		os.Exit(2)
	}
	var failed bool
	switch os.Args[1] {
	case "compose":
		for _, file := range os.Args[2:] {
			if err := checkCompose(file); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
				failed = true
			} else {
				emit(report{Kind: "compose", Name: file, Checks: []string{"compose-spec"}})
			}
		}
	case "k8s":
		ok, err := checkManifests(os.Args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[2], err)
			failed = true
		}
		failed = failed || !ok
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func emit(r report) {
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
}

func checkCompose(file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	opts, err := cli.NewProjectOptions(
		[]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithName("deploycheck"),
	)
	if err != nil {
		return err
	}
	_, err = opts.LoadProject(context.Background())
	return err
}

func checkManifests(file string) (bool, error) {
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return false, err
		}
		defer f.Close()
		in = f
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return false, err
	}
	restricted := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	ok := true
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return false, err
		}
		r := report{Kind: head.Kind, Name: head.Metadata.Name, Checks: []string{}}
		problem := checkDocument(doc, head.APIVersion, head.Kind, evaluator, restricted, &r)
		if problem != "" {
			r.Problem = problem
			ok = false
			fmt.Fprintf(os.Stderr, "%s/%s: %s\n", head.Kind, head.Metadata.Name, problem)
		}
		emit(r)
	}
	return ok, nil
}

func checkDocument(doc []byte, apiVersion, kind string, ev policy.Evaluator,
	lv psapi.LevelVersion, r *report) string {
	strict := func(into any) string {
		r.Checks = append(r.Checks, "strict-decode")
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return err.Error()
		}
		return ""
	}
	pod := func(meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
		r.Checks = append(r.Checks, "pod-security-restricted")
		agg := policy.AggregateCheckResults(ev.EvaluatePod(lv, meta, spec))
		if !agg.Allowed {
			return "violates the Restricted pod security standard: " + agg.ForbiddenReason() +
				": " + agg.ForbiddenDetail()
		}
		return ""
	}
	monitoring := apiVersion == monitoringv1.SchemeGroupVersion.String()
	switch {
	case monitoring && kind == monitoringv1.ServiceMonitorsKind:
		return strict(&monitoringv1.ServiceMonitor{})
	case monitoring && kind == monitoringv1.PrometheusRuleKind:
		return strict(&monitoringv1.PrometheusRule{})
	case monitoring && kind == monitoringv1.PodMonitorsKind:
		return strict(&monitoringv1.PodMonitor{})
	case apiVersion == "apps/v1" && kind == "StatefulSet":
		var o appsv1.StatefulSet
		if p := strict(&o); p != "" {
			return p
		}
		return pod(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec)
	case apiVersion == "apps/v1" && kind == "Deployment":
		var o appsv1.Deployment
		if p := strict(&o); p != "" {
			return p
		}
		return pod(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec)
	case apiVersion == "batch/v1" && kind == "Job":
		var o batchv1.Job
		if p := strict(&o); p != "" {
			return p
		}
		return pod(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec)
	case apiVersion == "v1" && kind == "Pod":
		var o corev1.Pod
		if p := strict(&o); p != "" {
			return p
		}
		return pod(&o.ObjectMeta, &o.Spec)
	}
	return ""
}
