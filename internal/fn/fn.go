package fn

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/errors"
	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/response"
)

// Names of the composed resources in the function's desired state. They are
// stable keys Crossplane tracks composed objects by; renaming one would make
// Crossplane delete and re-create that object.
const (
	nameStatefulSet      resource.Name = "statefulset"
	nameService          resource.Name = "service"
	nameHeadless         resource.Name = "service-headless"
	nameConfigMap        resource.Name = "configmap"
	nameAuthSecret       resource.Name = "secret-auth"
	nameConnectionSecret resource.Name = "secret-connection"
	nameNetworkPolicy    resource.Name = "networkpolicy"
	namePDB              resource.Name = "poddisruptionbudget"

	nameReplicasService resource.Name = "service-replicas"
	nameSentinelService resource.Name = "service-sentinel"
	nameServiceAccount  resource.Name = "serviceaccount"
	nameRole            resource.Name = "role"
	nameRoleBinding     resource.Name = "rolebinding"

	nameGatewayDeployment    resource.Name = "gateway-deployment"
	nameGatewayService       resource.Name = "gateway-service"
	nameGatewayIngress       resource.Name = "gateway-ingress"
	nameGatewayNetworkPolicy resource.Name = "gateway-networkpolicy"
	nameGatewayPDB           resource.Name = "gateway-poddisruptionbudget"

	nameBackupCronJob       resource.Name = "backup-cronjob"
	nameBackupNetworkPolicy resource.Name = "backup-networkpolicy"

	nameMetricsService       resource.Name = "metrics-service"
	nameMetricsNetworkPolicy resource.Name = "metrics-networkpolicy"
)

// conditionValid is the custom condition tenants see on their instance: False
// with the reason when its spec cannot be composed.
const conditionValid = "Valid"

// Function composes a RedisHttpInstance.
type Function struct {
	fnv1.UnimplementedFunctionRunnerServiceServer

	log           logging.Logger
	password      PasswordGenerator
	clusterDomain string
	provider      ProviderPeer
	images        []string
	gatewayImage  string
	coordinator   string
	backupImage   string
	ingress       IngressPeer
	responses     *responseCache
	now           func() time.Time
	exporterImage string
	prometheus    PrometheusPeer
}

// An Option configures a Function.
type Option func(*Function)

// WithPasswordGenerator replaces the random password generator, for tests.
func WithPasswordGenerator(g PasswordGenerator) Option {
	return func(f *Function) { f.password = g }
}

// WithClusterDomain sets the DNS domain used in endpoints (default cluster.local).
func WithClusterDomain(d string) Option {
	return func(f *Function) { f.clusterDomain = d }
}

// WithProviderPeer sets where the ApiKey provider runs, for NetworkPolicies.
func WithProviderPeer(p ProviderPeer) Option {
	return func(f *Function) { f.provider = p }
}

// WithAllowedImagePrefixes restricts the images tenants may set in
// spec.image to those under one of prefixes (see imageAllowed). None, the
// default, allows any.
func WithAllowedImagePrefixes(prefixes ...string) Option {
	return func(f *Function) { f.images = prefixes }
}

// WithGatewayImage sets the HTTP gateway's image, a platform setting. Without
// one, spec.http.enabled is refused.
func WithGatewayImage(image string) Option {
	return func(f *Function) { f.gatewayImage = image }
}

// WithCoordinatorImage sets the image of the coordinator that runs in every
// pod of an instance with replicas, a platform setting. Without one,
// spec.replicas above 1 is refused.
func WithCoordinatorImage(image string) Option {
	return func(f *Function) { f.coordinator = image }
}

// WithBackupImage sets the image of the backup job and the restore init
// container (cmd/backup), a platform setting. Without one, spec.backup and
// spec.restore are refused.
func WithBackupImage(image string) Option {
	return func(f *Function) { f.backupImage = image }
}

// WithIngressPeer sets where the ingress controller runs, for the gateway's
// NetworkPolicy.
func WithIngressPeer(p IngressPeer) Option {
	return func(f *Function) { f.ingress = p }
}

// WithExporterImage sets the monitoring exporter's image, a platform setting
// (default DefaultExporterImage). An empty one refuses
// spec.monitoring.enabled.
func WithExporterImage(image string) Option {
	return func(f *Function) { f.exporterImage = image }
}

// WithPrometheusPeer sets where the platform's Prometheus runs, for the
// exporter's NetworkPolicy.
func WithPrometheusPeer(p PrometheusPeer) Option {
	return func(f *Function) { f.prometheus = p }
}

// NewFunction returns a Function that logs to log.
func NewFunction(log logging.Logger, o ...Option) *Function {
	f := &Function{log: log, password: RandomPassword, responses: newResponseCache(), now: time.Now, clusterDomain: contract.DefaultClusterDomain, provider: DefaultProviderPeer, ingress: DefaultIngressPeer,
		exporterImage: DefaultExporterImage, prometheus: DefaultPrometheusPeer}
	for _, fn := range o {
		fn(f)
	}
	return f
}

// RunFunction composes the objects that run a tenant's Redis. Mistakes in the
// tenant's manifest are Fatal results naming the field; only failures of the
// function itself are gRPC errors. A request the function answered last time
// for the same composite resource gets the same response again (cache.go).
func (f *Function) RunFunction(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	key, sum, cacheable := f.responses.key(req)
	if cacheable {
		if rsp := f.responses.get(key, sum, f.now()); rsp != nil {
			return rsp, nil
		}
	}
	ctx, valid := withValidity(ctx)
	rsp, err := f.compose(ctx, req)
	if cacheable && err == nil {
		f.responses.add(key, sum, rsp, valid.until)
	}
	return rsp, err
}

// compose answers req.
func (f *Function) compose(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	rsp := response.To(req, response.DefaultTTL)

	oxr, err := request.GetObservedCompositeResource(req)
	if err != nil {
		response.Fatal(rsp, errors.Wrap(err, "cannot get the observed composite resource"))
		return rsp, nil
	}
	log := f.log.WithValues("xr-kind", oxr.Resource.GetKind(), "xr-name", oxr.Resource.GetName())

	observed, err := request.GetObservedComposedResources(req)
	if err != nil {
		response.Fatal(rsp, errors.Wrap(err, "cannot get observed composed resources"))
		return rsp, nil
	}
	in, err := instanceOf(oxr.Resource)
	if err == nil {
		err = validateName(in)
	}
	if err != nil && len(observed) == 0 {
		refuse(rsp, err.Error())
		return rsp, invalidStatus(req, rsp)
	}
	if err != nil {
		invalid(rsp, err.Error())
		return rsp, nil
	}
	log = log.WithValues("namespace", in.Namespace, "instance", in.Name)

	spec, _ := oxr.Resource.Object["spec"].(map[string]any)
	p, applied, errs := f.accept(spec, in, observed)
	refused := len(errs) > 0
	if refused {
		msg := invalidSpecMessage(v1alpha1.RedisHttpInstanceKind, in.Namespace+"/"+in.Name, errs)
		if len(observed) == 0 {
			// Nothing runs yet, so there is nothing to keep: say so in the
			// status (PHASE Invalid) rather than fail the pipeline.
			refuse(rsp, msg)
			return rsp, invalidStatus(req, rsp)
		}
		// Keep composing what runs, from the last spec accepted.
		var perrs field.ErrorList
		if p, applied, perrs = f.accept(lastApplied(oxr), in, observed); len(perrs) > 0 || p == nil {
			// No applied spec (composed before status.applied existed), or
			// one the platform now refuses: change nothing at all.
			invalid(rsp, msg)
			return rsp, nil
		}
		refuse(rsp, msg)
		log.Debug("Spec refused; composing the last accepted spec", "error", msg)
	}
	password, from, err := existingPassword(req, observed)
	if err != nil {
		invalid(rsp, err.Error())
		return rsp, nil
	}
	switch {
	case password == "":
		if password, err = f.password(); err != nil {
			// Not the tenant's mistake: let Crossplane retry.
			return nil, errors.Wrap(err, "cannot generate a password")
		}
		log.Debug("Generated a new password for the instance")
	case from != contract.AuthSecretName(in.Name):
		response.Normalf(rsp, "Secret %q was missing; its password was restored from Secret %q", contract.AuthSecretName(in.Name), from).TargetCompositeAndClaim()
	}

	desired, err := request.GetDesiredComposedResources(req)
	if err != nil {
		response.Fatal(rsp, errors.Wrap(err, "cannot get desired composed resources"))
		return rsp, nil
	}

	ps := pods(req)
	rs := rolesOf(ps)
	if !p.HA() && len(ps) == 1 {
		// One pod, no role label: it is the master.
		rs.Master = ps[0].Resource.GetName()
	}
	if msg := holdScaleDown(p, in, observed, rs); msg != "" {
		response.Normal(rsp, msg).TargetCompositeAndClaim()
	}
	conf := redisConf(p)
	auth := authConf(password, p.HA())
	var exporterPassword string
	if p.Monitoring {
		if exporterPassword, err = f.exporterPassword(observed); err != nil {
			// Not the tenant's mistake: let Crossplane retry.
			return nil, err
		}
		auth += exporterUserConf(exporterPassword)
	}
	host := endpoint(in, f.clusterDomain)
	details := connectionDetails(host, password)
	sum := checksum(conf, auth)
	conf, auth = stamp(conf, sum), stamp(auth, sum)
	sts := statefulSet(in, p, sum)
	if msg := keepVolumeTemplate(sts, observed); msg != "" {
		response.Warning(rsp, errors.New(msg)).WithReason("StorageUnchanged").TargetCompositeAndClaim()
	}
	objs := map[resource.Name]runtime.Object{
		nameStatefulSet: sts,
		nameService:     clientService(in, p.HA()),
		nameHeadless:    headlessService(in),
		nameConfigMap:   configMap(in, conf),
		nameAuthSecret:  authSecret(in, password, auth),
	}
	if p.HA() {
		makeHA(sts, in, p.Replicas, p.WantReplicas, f.coordinator, f.clusterDomain)
		maps.Copy(details, sentinelDetails(in, f.clusterDomain))
		objs[nameReplicasService] = replicasService(in)
		objs[nameSentinelService] = sentinelService(in)
		objs[nameServiceAccount] = coordinatorServiceAccount(in)
		objs[nameRole] = coordinatorRole(in)
		objs[nameRoleBinding] = coordinatorRoleBinding(in)
		objs[namePDB] = haPodDisruptionBudget(in)
	}
	if p.Monitoring {
		f.monitor(objs, in, p, sts, exporterPassword)
		if err := f.monitorWithPrometheus(req, rsp, objs, in, p); err != nil {
			// alerts.yaml is embedded: not the tenant's mistake.
			return nil, err
		}
		if p.Dashboard {
			cm, err := dashboardConfigMap(in)
			if err != nil {
				// dashboard.json is embedded: not the tenant's mistake.
				return nil, err
			}
			objs[nameDashboardConfigMap] = cm
		}
	} else {
		monitoringOff(rsp, oxr.Resource.Object)
	}
	if !in.Claim {
		objs[nameConnectionSecret] = connectionSecret(in, p.ConnSecretName, details)
	}
	if p.NetworkPolicy {
		objs[nameNetworkPolicy] = networkPolicy(in, p.PodSelector, f.provider, p.HTTP != nil, p.HA(), p.Backup != nil)
	}
	if p.PDB && !p.HA() {
		objs[namePDB] = podDisruptionBudget(in)
	}
	addRestore(&sts.Spec.Template.Spec, in, p.Restore, f.backupImage, observed)
	if b := p.Backup; b != nil {
		objs[nameBackupCronJob] = backupCronJob(in, b, f.backupImage, f.clusterDomain, p.HA())
		if p.NetworkPolicy {
			objs[nameBackupNetworkPolicy] = backupNetworkPolicy(in, b)
		}
	}
	var restURL, restInCluster string
	if h := p.HTTP; h != nil {
		restURL, restInCluster = gatewayURLs(in, h, f.clusterDomain)
		maps.Copy(details, restDetails(restURL, restInCluster, password))
		objs[nameGatewayDeployment] = gatewayDeployment(in, h, f.gatewayImage, f.clusterDomain)
		objs[nameGatewayService] = gatewayService(in)
		if h.Host != "" {
			objs[nameGatewayIngress] = gatewayIngress(in, h)
		}
		if p.NetworkPolicy {
			objs[nameGatewayNetworkPolicy] = gatewayNetworkPolicy(in, h, p.PodSelector, f.ingress)
		}
		if p.PDB && h.Replicas > 1 {
			objs[nameGatewayPDB] = gatewayPodDisruptionBudget(in)
		}
	}
	for name, o := range objs {
		cd, err := toComposed(o)
		if err != nil {
			return nil, errors.Wrapf(err, "cannot convert composed resource %q", name)
		}
		desired[name] = &resource.DesiredComposed{Resource: cd, Ready: ready(name, observed)}
	}
	if err := response.SetDesiredComposedResources(rsp, desired); err != nil {
		return nil, errors.Wrap(err, "cannot set desired composed resources")
	}

	dxr, err := request.GetDesiredCompositeResource(req)
	if err != nil {
		response.Fatal(rsp, errors.Wrap(err, "cannot get the desired composite resource"))
		return rsp, nil
	}
	requirePod(rsp, in)
	if p.Backup != nil {
		requireBackupPods(rsp, in)
		until, err := reportBackups(rsp, dxr, in, backupOutcomeOf(req, oxr.Resource), scheduleCheckOf(p.Backup, observed, f.now()))
		if err != nil {
			return nil, err
		}
		validUntil(ctx, until)
	}
	if in.Claim {
		requireConnectionSecret(rsp, oxr.Resource)
	}
	phase := v1alpha1.PhaseProvisioning
	failure := podProblem(ps)
	switch {
	case ready(nameStatefulSet, observed) == resource.ReadyTrue && (!p.HA() || rs.MasterReady) && (p.HTTP == nil || ready(nameGatewayDeployment, observed) == resource.ReadyTrue):
		phase = v1alpha1.PhaseReady
	case failure.Summary != "":
		phase = v1alpha1.PhaseFailed
	}
	if phase != v1alpha1.PhaseFailed {
		failure = podFailure{}
	}
	reportPodFailure(rsp, oxr.Resource, failure)
	if refused {
		phase = v1alpha1.PhaseInvalid
	}
	// The REST URLs are empty while HTTP is off, so a URL never outlives its
	// gateway, however Crossplane merges the status.
	status := map[string]any{
		"status.endpoint": host, "status.port": int64(contract.RedisPort), "status.phase": phase,
		contract.StatusRESTURL: restURL, contract.StatusRESTURLInCluster: restInCluster,
		statusApplied: applied,
	}
	if p.HA() {
		status[contract.StatusMaster], status[contract.StatusReplicas] = rs.Master, int64(rs.ReadyReplicas)
	} else if rs.Master != "" {
		status[contract.StatusMaster] = rs.Master
	}
	for k, v := range status {
		if err := dxr.Resource.SetValue(k, v); err != nil {
			return nil, errors.Wrapf(err, "cannot set %s", k)
		}
	}
	if in.Claim {
		dxr.ConnectionDetails = details
	}
	if err := response.SetDesiredCompositeResource(rsp, dxr); err != nil {
		return nil, errors.Wrap(err, "cannot set the desired composite resource")
	}

	if p.StorageSize.Cmp(p.Memory) < 0 && p.RDB {
		response.Warning(rsp, fmt.Errorf("spec.storage.size (%s) is smaller than spec.memory (%s): an RDB snapshot of a full instance may not fit", p.StorageSize.String(), p.Memory.String())).TargetCompositeAndClaim()
	}
	if !refused {
		response.ConditionTrue(rsp, conditionValid, "SpecValid").TargetCompositeAndClaim()
	}
	log.Debug("Composed instance", "phase", phase, "resources", strconv.Itoa(len(objs)))
	return rsp, nil
}
