package test

import (
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const supportValuesFile = "../support/portal-agent.values.yaml"

// supportValues is the part of 2i2c's `support` chart values the snippet
// may set: the prometheus-community chart's server section, with the
// chart's key names. Decoding strictly into it catches a misspelt key,
// which the chart itself would silently ignore, and decodes the sidecar,
// volumes and mounts strictly against the Kubernetes types.
type supportValues struct {
	Prometheus struct {
		Server struct {
			ExtraArgs           map[string]string    `json:"extraArgs"`
			ExtraVolumes        []corev1.Volume      `json:"extraVolumes"`
			ExtraVolumeMounts   []corev1.VolumeMount `json:"extraVolumeMounts"`
			ExtraInitContainers []corev1.Container   `json:"extraInitContainers"`
		} `json:"server"`
	} `json:"prometheus"`
}

// prometheusChartVolume is the volume the prometheus-community chart makes
// of its server ConfigMap (serverFiles, web.yml among them) and mounts at
// /etc/config in the Prometheus container.
const prometheusChartVolume = "config-volume"

// renderedPrometheusPod is the server pod as the prometheus-community chart
// renders it with the snippet: its own config volume and Prometheus
// container, with the snippet's init containers, volumes, mounts and args.
func renderedPrometheusPod(t *testing.T, v *supportValues) *corev1.Pod {
	t.Helper()
	s := v.Prometheus.Server
	var args []string
	for k, val := range s.ExtraArgs {
		args = append(args, "--"+k+"="+val)
	}
	slices.Sort(args)
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: s.ExtraInitContainers,
		Containers: []corev1.Container{{
			Name: "prometheus-server", Image: "quay.io/prometheus/prometheus",
			Args:         append([]string{"--config.file=/etc/config/prometheus.yml"}, args...),
			VolumeMounts: append([]corev1.VolumeMount{{Name: prometheusChartVolume, MountPath: "/etc/config"}}, s.ExtraVolumeMounts...),
		}},
		Volumes: append([]corev1.Volume{{Name: prometheusChartVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "support-prometheus-server"}},
		}}}, s.ExtraVolumes...),
	}}
	pod.APIVersion, pod.Kind, pod.Name = "v1", "Pod", "support-prometheus-server"
	// The rendered pod itself, through YAML and a strict decode, as the API
	// server would receive it.
	out, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var back corev1.Pod
	if err := yaml.UnmarshalStrict(out, &back); err != nil {
		t.Fatalf("the rendered Prometheus pod does not decode strictly: %v", err)
	}
	return &back
}

func TestSupportValuesSidecarDecodesStrictly(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(supportValuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var v supportValues
	if err := yaml.UnmarshalStrict(data, &v); err != nil {
		t.Fatalf("%s: %v", supportValuesFile, err)
	}
	pod := renderedPrometheusPod(t, &v)
	if len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("init containers %v, want the agent alone", pod.Spec.InitContainers)
	}
	agent := pod.Spec.InitContainers[0]

	// A native sidecar: Prometheus starts once the agent's startup probe
	// passes, i.e. once the file exists.
	if agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("agent restartPolicy %v, want Always (a native sidecar)", agent.RestartPolicy)
	}
	if got := probePath(agent.StartupProbe); got != "/healthz" {
		t.Errorf("agent startup probe on %q, want /healthz", got)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": agent.LivenessProbe, "readiness": agent.ReadinessProbe} {
		if probePath(p) == "/readyz" {
			t.Errorf("%s probe on /readyz: a portal outage would take Prometheus out of its Service", name)
		}
	}
	if !slices.Equal(agent.Args, []string{"agent"}) {
		t.Errorf("agent args %v", agent.Args)
	}
	sc := agent.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("agent security context %+v: want non-root, read-only root, no privilege escalation", sc)
	}

	env := envOf(agent)
	for _, name := range []string{"PORTAL_AGENT_PORTAL_URL", "PORTAL_AGENT_CLUSTER", "PORTAL_AGENT_TOKEN_FILE", "PORTAL_AGENT_BASE", "PORTAL_AGENT_OUT"} {
		if env[name] == "" {
			t.Errorf("agent without %s, which it requires", name)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, vol := range pod.Spec.Volumes {
		volumes[vol.Name] = vol
	}
	// mountOf is the volume and mount holding file in container c.
	mountOf := func(c corev1.Container, file string) (corev1.Volume, corev1.VolumeMount) {
		t.Helper()
		for _, m := range c.VolumeMounts {
			if path.Dir(file) == m.MountPath || strings.HasPrefix(file, m.MountPath+"/") {
				vol, ok := volumes[m.Name]
				if !ok {
					t.Fatalf("%s mounts %q, which is no volume of the pod", c.Name, m.Name)
				}
				if m.SubPath != "" {
					t.Errorf("%s mounts %s with subPath: a changed file would never reach it", c.Name, m.MountPath)
				}
				return vol, m
			}
		}
		t.Fatalf("%s has no mount holding %s", c.Name, file)
		return corev1.Volume{}, corev1.VolumeMount{}
	}
	prometheus := pod.Spec.Containers[0]

	// Prometheus reads the agent's output, from an emptyDir they share.
	out := env["PORTAL_AGENT_OUT"]
	if got := v.Prometheus.Server.ExtraArgs["web.config.file"]; got != out {
		t.Errorf("web.config.file = %q, but the agent writes %q", got, out)
	}
	outVol, outMount := mountOf(agent, out)
	if outVol.EmptyDir == nil || outMount.ReadOnly {
		t.Errorf("the agent writes into %+v (mount %+v); want a writable emptyDir", outVol, outMount)
	}
	if outVol.EmptyDir != nil && (outVol.EmptyDir.SizeLimit == nil || outVol.EmptyDir.SizeLimit.Value() < 2<<20) {
		t.Errorf("emptyDir sizeLimit %v: two copies of a 1 MiB file exist during a write", outVol.EmptyDir.SizeLimit)
	}
	if pv, pm := mountOf(prometheus, out); pv.Name != outVol.Name || !pm.ReadOnly {
		t.Errorf("Prometheus reads %s from %q (read-only %v), the agent writes it to %q", out, pv.Name, pm.ReadOnly, outVol.Name)
	}

	// The base is the cluster's web.yml where it lives today, the chart's
	// ConfigMap of serverFiles: the internal user comes from there.
	base := env["PORTAL_AGENT_BASE"]
	if bv, _ := mountOf(agent, base); bv.Name != prometheusChartVolume || path.Base(base) != "web.yml" {
		t.Errorf("the agent's base %s is in volume %q; want web.yml of %q (serverFiles)", base, bv.Name, prometheusChartVolume)
	}
	// The token comes from a Secret.
	if tv, _ := mountOf(agent, env["PORTAL_AGENT_TOKEN_FILE"]); tv.Secret == nil || tv.Secret.SecretName == "" {
		t.Errorf("the token file is in volume %+v, want a Secret", tv)
	}
}
