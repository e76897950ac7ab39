package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "../helm/credential-portal"
	// kubeVersion is the Kubernetes the chart is rendered for: helm built by
	// `go install` has no version stamped in and would assume 1.20, below
	// the chart's least (1.29, for native sidecars).
	kubeVersion    = "1.33.0"
	productionFile = "../helm/credential-portal/ci/production-values.yaml"
)

// helm runs the helm on PATH (`make test` puts the pinned one in
// .tools/bin first) with its cache, configuration and data in a temporary
// folder, so that nothing of the machine's helm set-up changes the result.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("helm")
	if err != nil {
		t.Fatalf("helm is not on PATH: run `make tools` (installs the pinned helm into .tools/bin) and test with `make test`")
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), out.String())
	}
	return out.String(), nil
}

// manifests are one render's objects, decoded strictly, by kind and name.
type manifests struct {
	deployments     map[string]*appsv1.Deployment
	jobs            map[string]*batchv1.Job
	services        map[string]*corev1.Service
	secrets         map[string]*corev1.Secret
	configMaps      map[string]*corev1.ConfigMap
	ingresses       map[string]*networkingv1.Ingress
	pdbs            map[string]*policyv1.PodDisruptionBudget
	networkPolicies map[string]*networkingv1.NetworkPolicy
	serviceMonitors map[string]*serviceMonitor
	prometheusRules map[string]*prometheusRule
}

// prometheusRule is the Prometheus Operator's PrometheusRule
// (monitoring.coreos.com/v1), with its field names, for a strict decode.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleFile `json:"spec"`
}

// ruleFile is a Prometheus rule file: the spec of a PrometheusRule.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart writes, with the operator's field
// names: decoding strictly into it catches a misspelt field there too.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// render runs `helm template` with the values files given and decodes every
// manifest strictly; an unknown kind or field fails the test.
func render(t *testing.T, args ...string) *manifests {
	t.Helper()
	out, err := helm(t, append([]string{"template", "portal", chartDir, "--namespace", "credentials", "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, out)
}

func decodeAll(t *testing.T, out string) *manifests {
	t.Helper()
	m := &manifests{
		deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{},
		services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{},
		configMaps: map[string]*corev1.ConfigMap{}, ingresses: map[string]*networkingv1.Ingress{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, networkPolicies: map[string]*networkingv1.NetworkPolicy{},
		serviceMonitors: map[string]*serviceMonitor{}, prometheusRules: map[string]*prometheusRule{},
	}
	for doc := range strings.SplitSeq(out, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("a rendered manifest is not YAML: %v\n%s", err, doc)
		}
		gvk := tm.APIVersion + " " + tm.Kind
		var name string
		var err error
		switch gvk {
		case "apps/v1 Deployment":
			name, err = strictInto(doc, m.deployments)
		case "batch/v1 Job":
			name, err = strictInto(doc, m.jobs)
		case "v1 Service":
			name, err = strictInto(doc, m.services)
		case "v1 Secret":
			name, err = strictInto(doc, m.secrets)
		case "v1 ConfigMap":
			name, err = strictInto(doc, m.configMaps)
		case "networking.k8s.io/v1 Ingress":
			name, err = strictInto(doc, m.ingresses)
		case "policy/v1 PodDisruptionBudget":
			name, err = strictInto(doc, m.pdbs)
		case "networking.k8s.io/v1 NetworkPolicy":
			name, err = strictInto(doc, m.networkPolicies)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			name, err = strictInto(doc, m.serviceMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			name, err = strictInto(doc, m.prometheusRules)
		default:
			t.Fatalf("the chart renders %q, which this test does not know: add its type here\n%s", gvk, doc)
		}
		if err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", gvk, err, doc)
		}
		if name == "" {
			t.Fatalf("%s without a name\n%s", gvk, doc)
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// objectName is any decoded Kubernetes object.
type objectName interface{ GetName() string }

// strictInto decodes doc into a new T, refusing unknown and duplicate
// fields, and files it under its name.
func strictInto[T any, PT interface {
	*T
	objectName
}](doc string, into map[string]PT) (string, error) {
	obj := PT(new(T))
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return "", err
	}
	if _, dup := into[obj.GetName()]; dup {
		return "", fmt.Errorf("two objects named %q", obj.GetName())
	}
	into[obj.GetName()] = obj
	return obj.GetName(), nil
}

func TestHelmLintDefaultAndProductionValues(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"-f", productionFile}} {
		if out, err := helm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, args...)...); err != nil {
			t.Errorf("helm lint %v: %v", args, err)
		} else if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint %v:\n%s", args, out)
		}
	}
}

// TestStrictDecodeCatchesMisspeltField proves the check has teeth: a
// manifest with a misspelt field, as a template typo would make, fails.
func TestStrictDecodeCatchesMisspeltField(t *testing.T) {
	t.Parallel()
	doc := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n"
	if _, err := strictInto(doc, map[string]*appsv1.Deployment{}); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a Deployment with spec.replica decoded (err %v); the strict decoder lets typos through", err)
	}
}

func TestDefaultValuesRenderAWorkingDeployment(t *testing.T) {
	t.Parallel()
	m := render(t)
	d := m.deployments["portal-credential-portal"]
	if d == nil {
		t.Fatalf("no Deployment portal-credential-portal; have %v", keys(m.deployments))
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2 by default", d.Spec.Replicas)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v: want maxUnavailable 0, so a ready replica always serves the agents", d.Spec.Strategy.RollingUpdate)
	}
	checkPortalPod(t, &d.Spec.Template.Spec, "portal")
	c := d.Spec.Template.Spec.Containers[0]
	if got := probePath(c.ReadinessProbe); got != "/readyz" {
		t.Errorf("readiness probe on %q, want /readyz", got)
	}
	if got := probePath(c.LivenessProbe); got != "/healthz" {
		t.Errorf("liveness probe on %q, want /healthz (a database outage must not restart pods)", got)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU requests and a memory limit", c.Resources)
	}
	if env := envOf(c); env["PORTAL_LISTEN"] != ":8080" || env["PORTAL_METRICS_LISTEN"] != ":10096" {
		t.Errorf("listen addresses: PORTAL_LISTEN=%q PORTAL_METRICS_LISTEN=%q", env["PORTAL_LISTEN"], env["PORTAL_METRICS_LISTEN"])
	}
	if d.Spec.Template.Spec.TerminationGracePeriodSeconds == nil || *d.Spec.Template.Spec.TerminationGracePeriodSeconds <= 15 {
		t.Errorf("terminationGracePeriodSeconds %v: want it above PORTAL_SHUTDOWN_TIMEOUT (15s)", d.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}

	checkMigrationJob(t, m)
	pdb := m.pdbs["portal-credential-portal"]
	if pdb == nil {
		t.Fatalf("no PodDisruptionBudget with two replicas; have %v", keys(m.pdbs))
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	if !selects(pdb.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("the PodDisruptionBudget's selector %v does not select the pods %v", pdb.Spec.Selector, d.Spec.Template.Labels)
	}
	svc := m.services["portal-credential-portal"]
	if svc == nil || !selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels) {
		t.Errorf("the Service does not select the pods: %+v", svc)
	}
	if len(m.ingresses) != 0 || len(m.networkPolicies) != 0 || len(m.serviceMonitors) != 0 || len(m.secrets) != 0 || len(m.prometheusRules) != 0 {
		t.Errorf("defaults render optional objects: ingresses %v, network policies %v, service monitors %v, secrets %v",
			keys(m.ingresses), keys(m.networkPolicies), keys(m.serviceMonitors), keys(m.secrets))
	}
}

func TestProductionValuesRender(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", productionFile)
	d := m.deployments["portal-credential-portal"]
	if d == nil {
		t.Fatalf("no Deployment; have %v", keys(m.deployments))
	}
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want the 3 of the values", *d.Spec.Replicas)
	}
	checkPortalPod(t, &d.Spec.Template.Spec, "portal")
	c := d.Spec.Template.Spec.Containers[0]
	if !strings.Contains(c.Image, "@sha256:") {
		t.Errorf("image %q: the digest given should pin it", c.Image)
	}
	env := envOf(c)
	for name, want := range map[string]string{
		"PORTAL_BASE_URL": "https://credentials.2i2c.org", "PORTAL_BCRYPT_COST": "5",
		"PORTAL_CLUSTERS_FILE": "/etc/portal/clusters.yaml", "PORTAL_STAFF_GROUPS": "2i2c-org:engineering",
	} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	refs := secretRefs(c)
	for name, want := range map[string]string{
		"DATABASE_URL":              "credential-portal-db/uri",
		"PORTAL_OIDC_CLIENT_SECRET": "credential-portal-oidc/client-secret",
		"PORTAL_SMTP_URL":           "portal-credential-portal/PORTAL_SMTP_URL",
	} {
		if refs[name] != want {
			t.Errorf("%s from Secret %q, want %q", name, refs[name], want)
		}
	}
	if _, ok := refs["PORTAL_STAFF_WEBHOOK_URL"]; ok {
		t.Errorf("PORTAL_STAFF_WEBHOOK_URL is set though the values give none")
	}
	sec := m.secrets["portal-credential-portal"]
	if sec == nil || sec.StringData["PORTAL_SMTP_URL"] == "" || len(sec.StringData) != 1 {
		t.Errorf("the chart's Secret should hold exactly the SMTP URL given as a value: %+v", sec)
	} else if sec.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" {
		t.Errorf("the chart's Secret is not a hook (%v): the migration hook, which runs first, could not read it", sec.Annotations)
	}
	checkMigrationJob(t, m)
	if job := m.jobs["portal-credential-portal-migrate"]; job != nil {
		if got := secretRefs(job.Spec.Template.Spec.Containers[0])["DATABASE_URL"]; got != "credential-portal-db-owner/uri" {
			t.Errorf("the migration Job's DATABASE_URL from %q, want the schema owner's (migrations.databaseURL)", got)
		}
	}
	if cm := m.configMaps["portal-credential-portal-clusters"]; cm == nil || !strings.Contains(cm.Data["clusters.yaml"], "awi-ciroh") {
		t.Errorf("clusters ConfigMap: %+v", cm)
	}

	ing := m.ingresses["portal-credential-portal"]
	if ing == nil {
		t.Fatalf("no Ingress; have %v", keys(m.ingresses))
	}
	if len(ing.Spec.TLS) != 1 || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"credentials.2i2c.org"}) || ing.Spec.TLS[0].SecretName == "" {
		t.Errorf("Ingress TLS %+v", ing.Spec.TLS)
	}
	if p := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name; p != "http" {
		t.Errorf("the Ingress reaches port %q; /metrics must stay off it", p)
	}

	np := m.networkPolicies["portal-credential-portal"]
	if np == nil || len(np.Spec.Ingress) != 2 {
		t.Fatalf("NetworkPolicy %+v: want a rule for the main port and one for metrics", np)
	}
	if from := np.Spec.Ingress[0].From; len(from) != 2 || from[0].NamespaceSelector == nil || from[1].PodSelector == nil {
		t.Errorf("main port open to %+v: want the ingress controller and the agents", from)
	}
	if np.Spec.Ingress[1].Ports[0].Port.String() != "metrics" {
		t.Errorf("second rule is for %v, want metrics", np.Spec.Ingress[1].Ports)
	}
	rule := m.prometheusRules["portal-credential-portal"]
	if rule == nil || len(rule.Spec.Groups) != 1 {
		t.Fatalf("PrometheusRule %+v", rule)
	}
	alerts := map[string]string{}
	for _, r := range rule.Spec.Groups[0].Rules {
		alerts[r.Alert] = r.Expr
	}
	if !strings.Contains(alerts["PortalDown"], `job="portal-credential-portal"`) {
		t.Errorf("PortalDown is %q: want the release's Service as the job", alerts["PortalDown"])
	}
	if !strings.Contains(alerts["PortalAgentSilent"], "max by (cluster) (portal_agent_last_sync_timestamp_seconds)") {
		t.Errorf("no alert on each cluster's last agent sync: %v", alerts)
	}
	sm := m.serviceMonitors["portal-credential-portal"]
	if sm == nil || sm.Spec.Endpoints[0].Port != "metrics" || sm.Labels["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %+v", sm)
	}
}

// TestSchemaRefusesUnknownKeys: a misspelt value stops the install with its
// name, instead of being ignored.
func TestSchemaRefusesUnknownKeys(t *testing.T) {
	t.Parallel()
	for _, set := range []string{"replicas=3", "config.PORTAL_BASEURL=https://x.org", "secrets.databaseUrl.value=postgres://x", "ingress.tls.secret=x"} {
		_, err := helm(t, "template", "portal", chartDir, "--kube-version", kubeVersion, "--set", set)
		key := strings.Split(strings.Split(set, "=")[0], ".")
		if err == nil || !strings.Contains(err.Error(), key[len(key)-1]) {
			t.Errorf("--set %s: err %v; want the schema to refuse it by name", set, err)
		}
	}
	if _, err := helm(t, "template", "portal", chartDir, "--kube-version", kubeVersion, "--set", "config.PORTAL_BCRYPT_COST=14"); err == nil {
		t.Errorf("a bcrypt cost of 14, which every agent would refuse, rendered")
	}
}

// checkPortalPod checks what every pod of the portal's needs: non-root, no
// privilege escalation, a read-only root, no API token, all capabilities dropped.
func checkPortalPod(t *testing.T, spec *corev1.PodSpec, container string) {
	t.Helper()
	if len(spec.Containers) != 1 || spec.Containers[0].Name != container {
		t.Fatalf("containers %v, want only %q", spec.Containers, container)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v: want runAsNonRoot and the RuntimeDefault seccomp profile", psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("the pod mounts a service account token; the portal calls no Kubernetes API")
	}
	sc := spec.Containers[0].SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v: want non-root, read-only root, no privilege escalation, ALL dropped", sc)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, vm := range spec.Containers[0].VolumeMounts {
		if !volumes[vm.Name] {
			t.Errorf("mount of %q, which is no volume of the pod", vm.Name)
		}
	}
	for _, e := range spec.Containers[0].Env {
		if isSecretVar(e.Name) && e.Value != "" {
			t.Errorf("%s is in the pod spec by value; it must come from a Secret", e.Name)
		}
	}
}

func isSecretVar(name string) bool {
	return slices.Contains([]string{"DATABASE_URL", "PORTAL_OIDC_CLIENT_SECRET", "PORTAL_SMTP_URL", "PORTAL_STAFF_WEBHOOK_URL"}, name)
}

// checkMigrationJob: `portal migrate up`, once, as a pre-install and
// pre-upgrade hook, so replicas never race on migrations.
func checkMigrationJob(t *testing.T, m *manifests) {
	t.Helper()
	job := m.jobs["portal-credential-portal-migrate"]
	if job == nil {
		t.Fatalf("no migration Job; have %v", keys(m.jobs))
	}
	a := job.Annotations
	if a["helm.sh/hook"] != "pre-install,pre-upgrade" {
		t.Errorf("migration Job hook %q, want pre-install,pre-upgrade", a["helm.sh/hook"])
	}
	if !strings.Contains(a["helm.sh/hook-delete-policy"], "before-hook-creation") {
		t.Errorf("hook-delete-policy %q: without before-hook-creation the next upgrade fails on the old Job", a["helm.sh/hook-delete-policy"])
	}
	if a["helm.sh/hook-weight"] == "" {
		t.Errorf("no hook weight: the Job must run after the hook Secret")
	}
	spec := job.Spec.Template.Spec
	checkPortalPod(t, &spec, "migrate")
	if spec.RestartPolicy != corev1.RestartPolicyNever || !slices.Equal(spec.Containers[0].Args, []string{"migrate", "up"}) {
		t.Errorf("migration pod: restartPolicy %q, args %v", spec.RestartPolicy, spec.Containers[0].Args)
	}
	if job.Spec.ActiveDeadlineSeconds == nil {
		t.Errorf("no activeDeadlineSeconds: a migration stuck on a lock would hold the upgrade for ever")
	}
}

func probePath(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// secretRefs maps each variable taken from a Secret to "secret/key".
func secretRefs(c corev1.Container) map[string]string {
	refs := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return refs
}

func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	if sel == nil || len(sel.MatchLabels) == 0 {
		return false
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestProductionEnvIsAConfigurationThePortalAccepts runs the real portal
// with the environment the production values render (each secret replaced
// by a well-formed stand-in, the clusters file by the ConfigMap's content):
// it starts and listens, so no setting the chart writes is refused.
func TestProductionEnvIsAConfigurationThePortalAccepts(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", productionFile)
	c := m.deployments["portal-credential-portal"].Spec.Template.Spec.Containers[0]
	dir := t.TempDir()
	clusters := filepath.Join(dir, "clusters.yaml")
	if err := os.WriteFile(clusters, []byte(m.configMaps["portal-credential-portal-clusters"].Data["clusters.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	standIns := map[string]string{
		// Nothing listens there: the portal starts and reports it in /readyz.
		"DATABASE_URL":              "postgres://portal@127.0.0.1:1/portal?sslmode=disable",
		"PORTAL_OIDC_CLIENT_SECRET": "stand-in",
		"PORTAL_SMTP_URL":           "smtp://user:pass@smtp.example.org:587",
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil:
			s, ok := standIns[e.Name]
			if !ok {
				t.Fatalf("no stand-in for %s", e.Name)
			}
			v = s
		case e.Name == "PORTAL_LISTEN" || e.Name == "PORTAL_METRICS_LISTEN":
			v = "127.0.0.1:0" // the rendered ports may be taken on this machine
		case e.Name == "PORTAL_CLUSTERS_FILE":
			v = clusters
		}
		env = append(env, e.Name+"="+v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, portalBinary(t), c.Args...)
	cmd.Env = env
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(logs.String(), `"metrics listening"`) || !strings.Contains(logs.String(), `"portal listening"`) {
		select {
		case err := <-exited:
			t.Fatalf("portal serve exited (%v) with the chart's environment:\n%s", err, logs.String())
		case <-deadline:
			t.Fatalf("portal serve did not listen within 30s:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	<-exited
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMigrationJobTakesTheOwnersURLWhenGiven: the migrations run as the
// schema owner when migrations.databaseURL is set, and with DATABASE_URL
// otherwise; both given as values live in the chart's hook Secret.
func TestMigrationJobTakesTheOwnersURLWhenGiven(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		set  []string
		want string
	}{
		{"DATABASE_URL alone", []string{"secrets.databaseURL.value=postgres://portal:pw@db/portal"}, "portal-credential-portal/DATABASE_URL"},
		{"the owner's URL", []string{"secrets.databaseURL.value=postgres://portal:pw@db/portal", "migrations.databaseURL.value=postgres://owner:pw@db/portal"}, "portal-credential-portal/MIGRATIONS_DATABASE_URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			m := render(t, args...)
			job := m.jobs["portal-credential-portal-migrate"]
			if got := secretRefs(job.Spec.Template.Spec.Containers[0])["DATABASE_URL"]; got != tt.want {
				t.Errorf("the Job's DATABASE_URL from %q, want %q", got, tt.want)
			}
			sec := m.secrets["portal-credential-portal"]
			if sec == nil || len(sec.StringData) != len(tt.set) {
				t.Errorf("the chart's Secret holds %v, want one key per value given", sec)
			}
			if got := secretRefs(m.deployments["portal-credential-portal"].Spec.Template.Spec.Containers[0])["DATABASE_URL"]; got != "portal-credential-portal/DATABASE_URL" {
				t.Errorf("the portal's DATABASE_URL from %q; the owner's URL is for the migrations only", got)
			}
		})
	}
}

// TestOperationsGuideShowsTheChartsAlerts: the rules docs/operations.md
// shows are the ones the chart installs.
func TestOperationsGuideShowsTheChartsAlerts(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Rules to set.")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/operations.md has no rules block after \"Rules to set.\"")
	}
	file, err := os.ReadFile(chartDir + "/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var inDoc, inChart ruleFile
	if err := yaml.UnmarshalStrict([]byte(block), &inDoc); err != nil {
		t.Fatalf("the guide's rules: %v", err)
	}
	if err := yaml.UnmarshalStrict(file, &inChart); err != nil {
		t.Fatalf("the chart's rules: %v", err)
	}
	a, _ := yaml.Marshal(inDoc)
	b, _ := yaml.Marshal(inChart)
	if !bytes.Equal(a, b) || len(inChart.Groups) == 0 {
		t.Errorf("docs/operations.md and files/alerts.yaml differ:\n%s\n---\n%s", a, b)
	}
}
