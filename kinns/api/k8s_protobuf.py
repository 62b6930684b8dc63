"""Decode Kubernetes protobuf request bodies into the JSON-shaped dicts we store.

kubectl's typed subcommands (``create configmap``, ``create deployment``,
``create service ...``, ``create token``, ...) go through client-go's typed
clientset, which sends ``application/vnd.kubernetes.protobuf`` rather than
JSON.  This module turns such a body into exactly the dict the JSON path
would have produced, so everything behind it stays JSON-only.

A body is four magic bytes ``k8s\\x00`` followed by a ``runtime.Unknown``
envelope: ``typeMeta`` (apiVersion, kind), ``raw`` (the typed message),
``contentEncoding`` and ``contentType``.  The envelope's kind selects a
message in ``_MESSAGES``, a compact table written for this project from the
field numbers and JSON names of the k8s.io/api types.  Each message is one
string of ``"<number> <jsonName> <kind><flags>"`` entries separated by ``;``:

* kind is ``s`` string, ``b`` bytes (base64 in JSON), ``i`` integer,
  ``?`` bool, ``f`` double, ``{K:V}`` a map (V may itself be a message or
  ``s*``, a wrapped string list), or another message's name;
* flag ``*`` marks a repeated field, ``!`` a scalar that Go serializes even
  when zero (a pointer, or a field without ``omitempty``), ``~`` a nil-able
  field without ``omitempty`` that Go writes as ``null`` when it is unset;
* jsonName ``^`` marks an embedded struct whose fields are inlined.

Go's generated marshallers write every non-pointer scalar, zero or not, so
"present on the wire" does not mean "set".  To reproduce what the API server
would see after ``proto -> Go struct -> JSON`` we drop zero scalars unless
they are flagged ``!``; nested messages are kept even when empty (Go never
omits a struct), and an empty ``Time`` is ``null`` (as in
``creationTimestamp: null``).  A handful of apimachinery types have their own
JSON form and are decoded by hand in ``_SPECIAL``: Time, MicroTime, Duration,
IntOrString, Quantity, FieldsV1 and RawExtension.

Field numbers the table does not know are skipped; ``decode_with_unknown``
also returns them (as ``"Message#number"``) so tests can check nothing known
was missed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_SCALARS = frozenset("sbif?")

# (apiVersion, kind) from the envelope -> message name in _MESSAGES.
KINDS: dict[tuple[str, str], str] = {
    ("apps/v1", "ControllerRevision"): "apps.ControllerRevision",
    ("apps/v1", "DaemonSet"): "apps.DaemonSet",
    ("apps/v1", "Deployment"): "apps.Deployment",
    ("apps/v1", "ReplicaSet"): "apps.ReplicaSet",
    ("apps/v1", "StatefulSet"): "apps.StatefulSet",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authn.SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenRequest"): "authn.TokenRequest",
    # kubectl 1.27's `auth whoami` (same fields as v1).
    ("authentication.k8s.io/v1beta1", "SelfSubjectReview"): "authn.SelfSubjectReview",
    ("authentication.k8s.io/v1alpha1", "SelfSubjectReview"): "authn.SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenReview"): "authn.TokenReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "authz.LocalSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "authz.SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "authz.SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "authz.SubjectAccessReview",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscaling1.HorizontalPodAutoscaler",
    ("autoscaling/v1", "Scale"): "autoscaling1.Scale",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscaling2.HorizontalPodAutoscaler",
    ("batch/v1", "CronJob"): "batch.CronJob",
    ("batch/v1", "Job"): "batch.Job",
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): "certs.CertificateSigningRequest",
    ("certificates.k8s.io/v1", "ClusterTrustBundle"): "certs.ClusterTrustBundle",
    ("certificates.k8s.io/v1", "PodCertificateRequest"): "certs.PodCertificateRequest",
    ("coordination.k8s.io/v1", "Lease"): "coordination.Lease",
    ("discovery.k8s.io/v1", "EndpointSlice"): "discovery.EndpointSlice",
    ("meta.k8s.io/v1", "DeleteOptions"): "meta.DeleteOptions",
    ("meta.k8s.io/v1", "PartialObjectMetadata"): "meta.PartialObjectMetadata",
    ("networking.k8s.io/v1", "IPAddress"): "networking.IPAddress",
    ("networking.k8s.io/v1", "Ingress"): "networking.Ingress",
    ("networking.k8s.io/v1", "IngressClass"): "networking.IngressClass",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networking.NetworkPolicy",
    ("networking.k8s.io/v1", "ServiceCIDR"): "networking.ServiceCIDR",
    ("policy/v1", "Eviction"): "policy.Eviction",
    ("policy/v1", "PodDisruptionBudget"): "policy.PodDisruptionBudget",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.RoleBinding",
    ("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.PriorityClass",
    ("storage.k8s.io/v1", "CSIDriver"): "storage.CSIDriver",
    ("storage.k8s.io/v1", "CSINode"): "storage.CSINode",
    ("storage.k8s.io/v1", "CSIStorageCapacity"): "storage.CSIStorageCapacity",
    ("storage.k8s.io/v1", "StorageClass"): "storage.StorageClass",
    ("storage.k8s.io/v1", "VolumeAttachment"): "storage.VolumeAttachment",
    ("storage.k8s.io/v1", "VolumeAttributesClass"): "storage.VolumeAttributesClass",
    ("v1", "Binding"): "core.Binding",
    ("v1", "ComponentStatus"): "core.ComponentStatus",
    ("v1", "ConfigMap"): "core.ConfigMap",
    ("v1", "Endpoints"): "core.Endpoints",
    ("v1", "Event"): "core.Event",
    ("v1", "LimitRange"): "core.LimitRange",
    ("v1", "Namespace"): "core.Namespace",
    ("v1", "Node"): "core.Node",
    ("v1", "PersistentVolume"): "core.PersistentVolume",
    ("v1", "PersistentVolumeClaim"): "core.PersistentVolumeClaim",
    ("v1", "Pod"): "core.Pod",
    ("v1", "PodTemplate"): "core.PodTemplate",
    ("v1", "RangeAllocation"): "core.RangeAllocation",
    ("v1", "ReplicationController"): "core.ReplicationController",
    ("v1", "ResourceQuota"): "core.ResourceQuota",
    ("v1", "Secret"): "core.Secret",
    ("v1", "Service"): "core.Service",
    ("v1", "ServiceAccount"): "core.ServiceAccount",
}

# message name -> "<number> <jsonName> <kind><flags>; ..." (see module docstring)
_MESSAGES: dict[str, str] = {
    "apps.ControllerRevision": (
        "1 metadata meta.ObjectMeta; 2 data runtime.RawExtension; 3 revision i!"
    ),
    "apps.DaemonSet": (
        "1 metadata meta.ObjectMeta; 2 spec apps.DaemonSetSpec; 3 status apps.DaemonSetStatus"
    ),
    "apps.DaemonSetCondition": (
        "1 type s!; 2 status s!; 3 lastTransitionTime meta.Time; 4 reason s; 5 message s"
    ),
    "apps.DaemonSetSpec": (
        "1 selector meta.LabelSelector~; 2 template core.PodTemplateSpec; "
        "3 updateStrategy apps.DaemonSetUpdateStrategy; 4 minReadySeconds i; "
        "6 revisionHistoryLimit i!"
    ),
    "apps.DaemonSetStatus": (
        "1 currentNumberScheduled i!; 2 numberMisscheduled i!; 3 desiredNumberScheduled i!; "
        "4 numberReady i!; 5 observedGeneration i; 6 updatedNumberScheduled i; "
        "7 numberAvailable i; 8 numberUnavailable i; 9 collisionCount i!; "
        "10 conditions apps.DaemonSetCondition*"
    ),
    "apps.DaemonSetUpdateStrategy": "1 type s; 2 rollingUpdate apps.RollingUpdateDaemonSet",
    "apps.Deployment": (
        "1 metadata meta.ObjectMeta; 2 spec apps.DeploymentSpec; 3 status apps.DeploymentStatus"
    ),
    "apps.DeploymentCondition": (
        "1 type s!; 2 status s!; 4 reason s; 5 message s; 6 lastUpdateTime meta.Time; "
        "7 lastTransitionTime meta.Time"
    ),
    "apps.DeploymentSpec": (
        "1 replicas i!; 2 selector meta.LabelSelector~; 3 template core.PodTemplateSpec; "
        "4 strategy apps.DeploymentStrategy; 5 minReadySeconds i; 6 revisionHistoryLimit i!; "
        "7 paused ?; 9 progressDeadlineSeconds i!"
    ),
    "apps.DeploymentStatus": (
        "1 observedGeneration i; 2 replicas i; 3 updatedReplicas i; 4 availableReplicas i; "
        "5 unavailableReplicas i; 6 conditions apps.DeploymentCondition*; 7 readyReplicas i; "
        "8 collisionCount i!; 9 terminatingReplicas i!"
    ),
    "apps.DeploymentStrategy": "1 type s; 2 rollingUpdate apps.RollingUpdateDeployment",
    "apps.ReplicaSet": (
        "1 metadata meta.ObjectMeta; 2 spec apps.ReplicaSetSpec; 3 status apps.ReplicaSetStatus"
    ),
    "apps.ReplicaSetCondition": (
        "1 type s!; 2 status s!; 3 lastTransitionTime meta.Time; 4 reason s; 5 message s"
    ),
    "apps.ReplicaSetSpec": (
        "1 replicas i!; 2 selector meta.LabelSelector~; 3 template core.PodTemplateSpec; "
        "4 minReadySeconds i"
    ),
    "apps.ReplicaSetStatus": (
        "1 replicas i!; 2 fullyLabeledReplicas i; 3 observedGeneration i; 4 readyReplicas i; "
        "5 availableReplicas i; 6 conditions apps.ReplicaSetCondition*; 7 terminatingReplicas i!"
    ),
    "apps.RollingUpdateDaemonSet": (
        "1 maxUnavailable intstr.IntOrString; 2 maxSurge intstr.IntOrString"
    ),
    "apps.RollingUpdateDeployment": (
        "1 maxUnavailable intstr.IntOrString; 2 maxSurge intstr.IntOrString"
    ),
    "apps.RollingUpdateStatefulSetStrategy": "1 partition i!; 2 maxUnavailable intstr.IntOrString",
    "apps.StatefulSet": (
        "1 metadata meta.ObjectMeta; 2 spec apps.StatefulSetSpec; "
        "3 status apps.StatefulSetStatus"
    ),
    "apps.StatefulSetCondition": (
        "1 type s!; 2 status s!; 3 lastTransitionTime meta.Time; 4 reason s; 5 message s"
    ),
    "apps.StatefulSetOrdinals": "1 start i!",
    "apps.StatefulSetPersistentVolumeClaimRetentionPolicy": "1 whenDeleted s; 2 whenScaled s",
    "apps.StatefulSetSpec": (
        "1 replicas i!; 2 selector meta.LabelSelector~; 3 template core.PodTemplateSpec; "
        "4 volumeClaimTemplates core.PersistentVolumeClaim*; 5 serviceName s!; "
        "6 podManagementPolicy s; 7 updateStrategy apps.StatefulSetUpdateStrategy; "
        "8 revisionHistoryLimit i!; 9 minReadySeconds i; "
        "10 persistentVolumeClaimRetentionPolicy apps.StatefulSetPersistentVolumeClaimRetentionPolicy; "
        "11 ordinals apps.StatefulSetOrdinals"
    ),
    "apps.StatefulSetStatus": (
        "1 observedGeneration i; 2 replicas i!; 3 readyReplicas i; 4 currentReplicas i; "
        "5 updatedReplicas i; 6 currentRevision s; 7 updateRevision s; 9 collisionCount i!; "
        "10 conditions apps.StatefulSetCondition*; 11 availableReplicas i!"
    ),
    "apps.StatefulSetUpdateStrategy": (
        "1 type s; 2 rollingUpdate apps.RollingUpdateStatefulSetStrategy"
    ),
    "authn.BoundObjectReference": "1 kind s; 2 apiVersion s; 3 name s; 4 uid s",
    "authn.SelfSubjectReview": (
        "1 metadata meta.ObjectMeta; 2 status authn.SelfSubjectReviewStatus"
    ),
    "authn.SelfSubjectReviewStatus": "1 userInfo authn.UserInfo",
    "authn.TokenRequest": (
        "1 metadata meta.ObjectMeta; 2 spec authn.TokenRequestSpec; "
        "3 status authn.TokenRequestStatus"
    ),
    "authn.TokenRequestSpec": (
        "1 audiences s*~; 3 boundObjectRef authn.BoundObjectReference~; 4 expirationSeconds i!~; "
        "5 attestations {s:s*}"
    ),
    "authn.TokenRequestStatus": "1 token s!; 2 expirationTimestamp meta.Time",
    "authn.TokenReview": (
        "1 metadata meta.ObjectMeta; 2 spec authn.TokenReviewSpec; "
        "3 status authn.TokenReviewStatus"
    ),
    "authn.TokenReviewSpec": "1 token s; 2 audiences s*",
    "authn.TokenReviewStatus": (
        "1 authenticated ?; 2 user authn.UserInfo; 3 error s; 4 audiences s*"
    ),
    "authn.UserInfo": "1 username s; 2 uid s; 3 groups s*; 4 extra {s:s*}",
    "authz.FieldSelectorAttributes": (
        "1 rawSelector s; 2 requirements meta.FieldSelectorRequirement*"
    ),
    "authz.LabelSelectorAttributes": (
        "1 rawSelector s; 2 requirements meta.LabelSelectorRequirement*"
    ),
    "authz.LocalSubjectAccessReview": (
        "1 metadata meta.ObjectMeta; 2 spec authz.SubjectAccessReviewSpec; "
        "3 status authz.SubjectAccessReviewStatus"
    ),
    "authz.NonResourceAttributes": "1 path s; 2 verb s",
    "authz.NonResourceRule": "1 verbs s*~; 2 nonResourceURLs s*",
    "authz.ResourceAttributes": (
        "1 namespace s; 2 verb s; 3 group s; 4 version s; 5 resource s; 6 subresource s; "
        "7 name s; 8 fieldSelector authz.FieldSelectorAttributes; "
        "9 labelSelector authz.LabelSelectorAttributes"
    ),
    "authz.ResourceRule": "1 verbs s*~; 2 apiGroups s*; 3 resources s*; 4 resourceNames s*",
    "authz.SelfSubjectAccessReview": (
        "1 metadata meta.ObjectMeta; 2 spec authz.SelfSubjectAccessReviewSpec; "
        "3 status authz.SubjectAccessReviewStatus"
    ),
    "authz.SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes authz.ResourceAttributes; "
        "2 nonResourceAttributes authz.NonResourceAttributes"
    ),
    "authz.SelfSubjectRulesReview": (
        "1 metadata meta.ObjectMeta; 2 spec authz.SelfSubjectRulesReviewSpec; "
        "3 status authz.SubjectRulesReviewStatus"
    ),
    "authz.SelfSubjectRulesReviewSpec": "1 namespace s",
    "authz.SubjectAccessReview": (
        "1 metadata meta.ObjectMeta; 2 spec authz.SubjectAccessReviewSpec; "
        "3 status authz.SubjectAccessReviewStatus"
    ),
    "authz.SubjectAccessReviewSpec": (
        "1 resourceAttributes authz.ResourceAttributes; "
        "2 nonResourceAttributes authz.NonResourceAttributes; 3 user s; 4 groups s*; "
        "5 extra {s:s*}; 6 uid s"
    ),
    "authz.SubjectAccessReviewStatus": "1 allowed ?!; 2 reason s; 3 evaluationError s; 4 denied ?",
    "authz.SubjectRulesReviewStatus": (
        "1 resourceRules authz.ResourceRule*~; 2 nonResourceRules authz.NonResourceRule*~; "
        "3 incomplete ?!; 4 evaluationError s"
    ),
    "autoscaling1.CrossVersionObjectReference": "1 kind s!; 2 name s!; 3 apiVersion s",
    "autoscaling1.HorizontalPodAutoscaler": (
        "1 metadata meta.ObjectMeta; 2 spec autoscaling1.HorizontalPodAutoscalerSpec; "
        "3 status autoscaling1.HorizontalPodAutoscalerStatus"
    ),
    "autoscaling1.HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef autoscaling1.CrossVersionObjectReference; 2 minReplicas i!; "
        "3 maxReplicas i!; 4 targetCPUUtilizationPercentage i!"
    ),
    "autoscaling1.HorizontalPodAutoscalerStatus": (
        "1 observedGeneration i!; 2 lastScaleTime meta.Time; 3 currentReplicas i!; "
        "4 desiredReplicas i!; 5 currentCPUUtilizationPercentage i!"
    ),
    "autoscaling1.Scale": (
        "1 metadata meta.ObjectMeta; 2 spec autoscaling1.ScaleSpec; "
        "3 status autoscaling1.ScaleStatus"
    ),
    "autoscaling1.ScaleSpec": "1 replicas i",
    "autoscaling1.ScaleStatus": "1 replicas i!; 2 selector s",
    "autoscaling2.ContainerResourceMetricSource": (
        "1 name s!; 2 target autoscaling2.MetricTarget; 3 container s!"
    ),
    "autoscaling2.ContainerResourceMetricStatus": (
        "1 name s!; 2 current autoscaling2.MetricValueStatus; 3 container s!"
    ),
    "autoscaling2.CrossVersionObjectReference": "1 kind s!; 2 name s!; 3 apiVersion s",
    "autoscaling2.ExternalMetricSource": (
        "1 metric autoscaling2.MetricIdentifier; 2 target autoscaling2.MetricTarget"
    ),
    "autoscaling2.ExternalMetricStatus": (
        "1 metric autoscaling2.MetricIdentifier; 2 current autoscaling2.MetricValueStatus"
    ),
    "autoscaling2.HPAScalingPolicy": "1 type s!; 2 value i!; 3 periodSeconds i!",
    "autoscaling2.HPAScalingRules": (
        "1 selectPolicy s!; 2 policies autoscaling2.HPAScalingPolicy*; "
        "3 stabilizationWindowSeconds i!; 4 tolerance resource.Quantity"
    ),
    "autoscaling2.HorizontalPodAutoscaler": (
        "1 metadata meta.ObjectMeta; 2 spec autoscaling2.HorizontalPodAutoscalerSpec; "
        "3 status autoscaling2.HorizontalPodAutoscalerStatus"
    ),
    "autoscaling2.HorizontalPodAutoscalerBehavior": (
        "1 scaleUp autoscaling2.HPAScalingRules; 2 scaleDown autoscaling2.HPAScalingRules"
    ),
    "autoscaling2.HorizontalPodAutoscalerCondition": (
        "1 type s!; 2 status s!; 3 lastTransitionTime meta.Time; 4 reason s; 5 message s; "
        "6 observedGeneration i!"
    ),
    "autoscaling2.HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef autoscaling2.CrossVersionObjectReference; 2 minReplicas i!; "
        "3 maxReplicas i!; 4 metrics autoscaling2.MetricSpec*; "
        "5 behavior autoscaling2.HorizontalPodAutoscalerBehavior"
    ),
    "autoscaling2.HorizontalPodAutoscalerStatus": (
        "1 observedGeneration i!; 2 lastScaleTime meta.Time; 3 currentReplicas i; "
        "4 desiredReplicas i!; 5 currentMetrics autoscaling2.MetricStatus*~; "
        "6 conditions autoscaling2.HorizontalPodAutoscalerCondition*"
    ),
    "autoscaling2.MetricIdentifier": "1 name s!; 2 selector meta.LabelSelector",
    "autoscaling2.MetricSpec": (
        "1 type s!; 2 object autoscaling2.ObjectMetricSource; "
        "3 pods autoscaling2.PodsMetricSource; 4 resource autoscaling2.ResourceMetricSource; "
        "5 external autoscaling2.ExternalMetricSource; "
        "7 containerResource autoscaling2.ContainerResourceMetricSource"
    ),
    "autoscaling2.MetricStatus": (
        "1 type s!; 2 object autoscaling2.ObjectMetricStatus; "
        "3 pods autoscaling2.PodsMetricStatus; 4 resource autoscaling2.ResourceMetricStatus; "
        "5 external autoscaling2.ExternalMetricStatus; "
        "7 containerResource autoscaling2.ContainerResourceMetricStatus"
    ),
    "autoscaling2.MetricTarget": (
        "1 type s!; 2 value resource.Quantity; 3 averageValue resource.Quantity; "
        "4 averageUtilization i!"
    ),
    "autoscaling2.MetricValueStatus": (
        "1 value resource.Quantity; 2 averageValue resource.Quantity; 3 averageUtilization i!"
    ),
    "autoscaling2.ObjectMetricSource": (
        "1 describedObject autoscaling2.CrossVersionObjectReference; "
        "2 target autoscaling2.MetricTarget; 3 metric autoscaling2.MetricIdentifier"
    ),
    "autoscaling2.ObjectMetricStatus": (
        "1 metric autoscaling2.MetricIdentifier; 2 current autoscaling2.MetricValueStatus; "
        "3 describedObject autoscaling2.CrossVersionObjectReference"
    ),
    "autoscaling2.PodsMetricSource": (
        "1 metric autoscaling2.MetricIdentifier; 2 target autoscaling2.MetricTarget"
    ),
    "autoscaling2.PodsMetricStatus": (
        "1 metric autoscaling2.MetricIdentifier; 2 current autoscaling2.MetricValueStatus"
    ),
    "autoscaling2.ResourceMetricSource": "1 name s!; 2 target autoscaling2.MetricTarget",
    "autoscaling2.ResourceMetricStatus": "1 name s!; 2 current autoscaling2.MetricValueStatus",
    "batch.CronJob": (
        "1 metadata meta.ObjectMeta; 2 spec batch.CronJobSpec; 3 status batch.CronJobStatus"
    ),
    "batch.CronJobSpec": (
        "1 schedule s!; 2 startingDeadlineSeconds i!; 3 concurrencyPolicy s; 4 suspend ?!; "
        "5 jobTemplate batch.JobTemplateSpec; 6 successfulJobsHistoryLimit i!; "
        "7 failedJobsHistoryLimit i!; 8 timeZone s!"
    ),
    "batch.CronJobStatus": (
        "1 active core.ObjectReference*; 4 lastScheduleTime meta.Time; "
        "5 lastSuccessfulTime meta.Time"
    ),
    "batch.Job": "1 metadata meta.ObjectMeta; 2 spec batch.JobSpec; 3 status batch.JobStatus",
    "batch.JobCondition": (
        "1 type s!; 2 status s!; 3 lastProbeTime meta.Time; 4 lastTransitionTime meta.Time; "
        "5 reason s; 6 message s"
    ),
    "batch.JobSchedulingConfiguration": (
        "1 schedulingPolicy schedulingA3.WorkloadPodGroupSchedulingPolicy; "
        "2 schedulingConstraints schedulingA3.WorkloadPodGroupSchedulingConstraints; "
        "3 disruptionMode schedulingA3.WorkloadPodGroupDisruptionMode; "
        "4 resourceClaims schedulingA3.WorkloadPodGroupResourceClaim*"
    ),
    "batch.JobSpec": (
        "1 parallelism i!; 2 completions i!; 3 activeDeadlineSeconds i!; "
        "4 selector meta.LabelSelector; 5 manualSelector ?!; 6 template core.PodTemplateSpec; "
        "7 backoffLimit i!; 8 ttlSecondsAfterFinished i!; 9 completionMode s!; 10 suspend ?!; "
        "11 podFailurePolicy batch.PodFailurePolicy; 12 backoffLimitPerIndex i!; "
        "13 maxFailedIndexes i!; 14 podReplacementPolicy s!; 15 managedBy s!; "
        "16 successPolicy batch.SuccessPolicy; 17 scheduling batch.JobSchedulingConfiguration"
    ),
    "batch.JobStatus": (
        "1 conditions batch.JobCondition*; 2 startTime meta.Time; 3 completionTime meta.Time; "
        "4 active i; 5 succeeded i; 6 failed i; 7 completedIndexes s; "
        "8 uncountedTerminatedPods batch.UncountedTerminatedPods; 9 ready i!; "
        "10 failedIndexes s!; 11 terminating i!"
    ),
    "batch.JobTemplateSpec": "1 metadata meta.ObjectMeta; 2 spec batch.JobSpec",
    "batch.PodFailurePolicy": "1 rules batch.PodFailurePolicyRule*~",
    "batch.PodFailurePolicyOnExitCodesRequirement": (
        "1 containerName s!; 2 operator s!; 3 values i*~"
    ),
    "batch.PodFailurePolicyOnPodConditionsPattern": "1 type s!; 2 status s!",
    "batch.PodFailurePolicyRule": (
        "1 action s!; 2 onExitCodes batch.PodFailurePolicyOnExitCodesRequirement; "
        "3 onPodConditions batch.PodFailurePolicyOnPodConditionsPattern*"
    ),
    "batch.SuccessPolicy": "1 rules batch.SuccessPolicyRule*~",
    "batch.SuccessPolicyRule": "1 succeededIndexes s!; 2 succeededCount i!",
    "batch.UncountedTerminatedPods": "1 succeeded s*; 2 failed s*",
    "certs.CertificateSigningRequest": (
        "1 metadata meta.ObjectMeta; 2 spec certs.CertificateSigningRequestSpec; "
        "3 status certs.CertificateSigningRequestStatus"
    ),
    "certs.CertificateSigningRequestCondition": (
        "1 type s!; 2 reason s; 3 message s; 4 lastUpdateTime meta.Time; "
        "5 lastTransitionTime meta.Time; 6 status s!"
    ),
    "certs.CertificateSigningRequestSpec": (
        "1 request b!~; 2 username s; 3 uid s; 4 groups s*; 5 usages s*; 6 extra {s:s*}; "
        "7 signerName s!; 8 expirationSeconds i!"
    ),
    "certs.CertificateSigningRequestStatus": (
        "1 conditions certs.CertificateSigningRequestCondition*; 2 certificate b"
    ),
    "certs.ClusterTrustBundle": "1 metadata meta.ObjectMeta; 2 spec certs.ClusterTrustBundleSpec",
    "certs.ClusterTrustBundleSpec": "1 signerName s; 2 trustBundle s!",
    "certs.PodCertificateRequest": (
        "1 metadata meta.ObjectMeta; 2 spec certs.PodCertificateRequestSpec; "
        "3 status certs.PodCertificateRequestStatus"
    ),
    "certs.PodCertificateRequestSpec": (
        "1 signerName s!; 2 podName s!; 3 podUID s!; 4 serviceAccountName s!; "
        "5 serviceAccountUID s!; 6 nodeName s!; 7 nodeUID s!; 8 maxExpirationSeconds i!; "
        "11 unverifiedUserAnnotations {s:s}; 12 stubPKCS10Request b!~"
    ),
    "certs.PodCertificateRequestStatus": (
        "1 conditions meta.Condition*; 2 certificateChain s; 4 notBefore meta.Time; "
        "5 beginRefreshAt meta.Time; 6 notAfter meta.Time"
    ),
    "coordination.Lease": "1 metadata meta.ObjectMeta; 2 spec coordination.LeaseSpec",
    "coordination.LeaseSpec": (
        "1 holderIdentity s!; 2 leaseDurationSeconds i!; 3 acquireTime meta.MicroTime; "
        "4 renewTime meta.MicroTime; 5 leaseTransitions i!; 6 strategy s!; 7 preferredHolder s!"
    ),
    "core.AWSElasticBlockStoreVolumeSource": (
        "1 volumeID s!; 2 fsType s; 3 partition i; 4 readOnly ?"
    ),
    "core.Affinity": (
        "1 nodeAffinity core.NodeAffinity; 2 podAffinity core.PodAffinity; "
        "3 podAntiAffinity core.PodAntiAffinity"
    ),
    "core.AppArmorProfile": "1 type s!; 2 localhostProfile s!",
    "core.AttachedVolume": "1 name s!; 2 devicePath s!",
    "core.AzureDiskVolumeSource": (
        "1 diskName s!; 2 diskURI s!; 3 cachingMode s!; 4 fsType s!; 5 readOnly ?!; 6 kind s!"
    ),
    "core.AzureFilePersistentVolumeSource": (
        "1 secretName s!; 2 shareName s!; 3 readOnly ?; 4 secretNamespace s!~"
    ),
    "core.AzureFileVolumeSource": "1 secretName s!; 2 shareName s!; 3 readOnly ?",
    "core.Binding": "1 metadata meta.ObjectMeta; 2 target core.ObjectReference",
    "core.CSIPersistentVolumeSource": (
        "1 driver s!; 2 volumeHandle s!; 3 readOnly ?; 4 fsType s; 5 volumeAttributes {s:s}; "
        "6 controllerPublishSecretRef core.SecretReference; "
        "7 nodeStageSecretRef core.SecretReference; 8 nodePublishSecretRef core.SecretReference; "
        "9 controllerExpandSecretRef core.SecretReference; "
        "10 nodeExpandSecretRef core.SecretReference"
    ),
    "core.CSIVolumeSource": (
        "1 driver s!; 2 readOnly ?!; 3 fsType s!; 4 volumeAttributes {s:s}; "
        "5 nodePublishSecretRef core.LocalObjectReference"
    ),
    "core.Capabilities": "1 add s*; 2 drop s*",
    "core.CephFSPersistentVolumeSource": (
        "1 monitors s*~; 2 path s; 3 user s; 4 secretFile s; 5 secretRef core.SecretReference; "
        "6 readOnly ?"
    ),
    "core.CephFSVolumeSource": (
        "1 monitors s*~; 2 path s; 3 user s; 4 secretFile s; "
        "5 secretRef core.LocalObjectReference; 6 readOnly ?"
    ),
    "core.CinderPersistentVolumeSource": (
        "1 volumeID s!; 2 fsType s; 3 readOnly ?; 4 secretRef core.SecretReference"
    ),
    "core.CinderVolumeSource": (
        "1 volumeID s!; 2 fsType s; 3 readOnly ?; 4 secretRef core.LocalObjectReference"
    ),
    "core.ClientIPConfig": "1 timeoutSeconds i!",
    "core.ClusterTrustBundleProjection": (
        "1 name s!; 2 signerName s!; 3 labelSelector meta.LabelSelector; 4 path s!; "
        "5 optional ?!; 6 user i!"
    ),
    "core.ComponentCondition": "1 type s!; 2 status s!; 3 message s; 4 error s",
    "core.ComponentStatus": "1 metadata meta.ObjectMeta; 2 conditions core.ComponentCondition*",
    "core.ConfigMap": (
        "1 metadata meta.ObjectMeta; 2 data {s:s}; 3 binaryData {s:b}; 4 immutable ?!"
    ),
    "core.ConfigMapEnvSource": "1 ^ core.LocalObjectReference; 2 optional ?!",
    "core.ConfigMapKeySelector": "1 ^ core.LocalObjectReference; 2 key s!; 3 optional ?!",
    "core.ConfigMapNodeConfigSource": (
        "1 namespace s!; 2 name s!; 3 uid s; 4 resourceVersion s; 5 kubeletConfigKey s!"
    ),
    "core.ConfigMapProjection": (
        "1 ^ core.LocalObjectReference; 2 items core.KeyToPath*; 4 optional ?!"
    ),
    "core.ConfigMapVolumeSource": (
        "1 ^ core.LocalObjectReference; 2 items core.KeyToPath*; 3 defaultMode i!; 4 optional ?!; "
        "5 defaultUser i!"
    ),
    "core.Container": (
        "1 name s!; 2 image s; 3 command s*; 4 args s*; 5 workingDir s; "
        "6 ports core.ContainerPort*; 7 env core.EnvVar*; 8 resources core.ResourceRequirements; "
        "9 volumeMounts core.VolumeMount*; 10 livenessProbe core.Probe; "
        "11 readinessProbe core.Probe; 12 lifecycle core.Lifecycle; 13 terminationMessagePath s; "
        "14 imagePullPolicy s; 15 securityContext core.SecurityContext; 16 stdin ?; "
        "17 stdinOnce ?; 18 tty ?; 19 envFrom core.EnvFromSource*; 20 terminationMessagePolicy s; "
        "21 volumeDevices core.VolumeDevice*; 22 startupProbe core.Probe; "
        "23 resizePolicy core.ContainerResizePolicy*; 24 restartPolicy s!; "
        "25 restartPolicyRules core.ContainerRestartRule*"
    ),
    "core.ContainerExtendedResourceRequest": (
        "1 containerName s!; 2 resourceName s!; 3 requestName s!"
    ),
    "core.ContainerImage": "1 names s*~; 2 sizeBytes i",
    "core.ContainerPort": "1 name s; 2 hostPort i; 3 containerPort i!; 4 protocol s; 5 hostIP s",
    "core.ContainerResizePolicy": "1 resourceName s!; 2 restartPolicy s!",
    "core.ContainerRestartRule": "1 action s; 2 exitCodes core.ContainerRestartRuleOnExitCodes",
    "core.ContainerRestartRuleOnExitCodes": "1 operator s; 2 values i*",
    "core.ContainerState": (
        "1 waiting core.ContainerStateWaiting; 2 running core.ContainerStateRunning; "
        "3 terminated core.ContainerStateTerminated"
    ),
    "core.ContainerStateRunning": "1 startedAt meta.Time",
    "core.ContainerStateTerminated": (
        "1 exitCode i!; 2 signal i; 3 reason s; 4 message s; 5 startedAt meta.Time; "
        "6 finishedAt meta.Time; 7 containerID s"
    ),
    "core.ContainerStateWaiting": "1 reason s; 2 message s",
    "core.ContainerStatus": (
        "1 name s!; 2 state core.ContainerState; 3 lastState core.ContainerState; 4 ready ?!; "
        "5 restartCount i!; 6 image s!; 7 imageID s!; 8 containerID s; 9 started ?!; "
        "10 allocatedResources {s:resource.Quantity}; 11 resources core.ResourceRequirements; "
        "12 volumeMounts core.VolumeMountStatus*; 13 user core.ContainerUser; "
        "14 allocatedResourcesStatus core.ResourceStatus*; 15 stopSignal s!"
    ),
    "core.ContainerUser": "1 linux core.LinuxContainerUser",
    "core.DaemonEndpoint": "1 Port i!",
    "core.DownwardAPIProjection": "1 items core.DownwardAPIVolumeFile*",
    "core.DownwardAPIVolumeFile": (
        "1 path s!; 2 fieldRef core.ObjectFieldSelector; "
        "3 resourceFieldRef core.ResourceFieldSelector; 4 mode i!; 5 user i!"
    ),
    "core.DownwardAPIVolumeSource": (
        "1 items core.DownwardAPIVolumeFile*; 2 defaultMode i!; 3 defaultUser i!"
    ),
    "core.EmptyDirVolumeSource": "1 medium s; 2 sizeLimit resource.Quantity; 3 mode i!",
    "core.EndpointAddress": (
        "1 ip s!; 2 targetRef core.ObjectReference; 3 hostname s; 4 nodeName s!"
    ),
    "core.EndpointPort": "1 name s; 2 port i!; 3 protocol s; 4 appProtocol s!",
    "core.EndpointSubset": (
        "1 addresses core.EndpointAddress*; 2 notReadyAddresses core.EndpointAddress*; "
        "3 ports core.EndpointPort*"
    ),
    "core.Endpoints": "1 metadata meta.ObjectMeta; 2 subsets core.EndpointSubset*",
    "core.EnvFromSource": (
        "1 prefix s; 2 configMapRef core.ConfigMapEnvSource; 3 secretRef core.SecretEnvSource"
    ),
    "core.EnvVar": "1 name s!; 2 value s; 3 valueFrom core.EnvVarSource",
    "core.EnvVarSource": (
        "1 fieldRef core.ObjectFieldSelector; 2 resourceFieldRef core.ResourceFieldSelector; "
        "3 configMapKeyRef core.ConfigMapKeySelector; 4 secretKeyRef core.SecretKeySelector; "
        "5 fileKeyRef core.FileKeySelector"
    ),
    "core.EphemeralContainer": "1 ^ core.EphemeralContainerCommon; 2 targetContainerName s",
    "core.EphemeralContainerCommon": (
        "1 name s!; 2 image s; 3 command s*; 4 args s*; 5 workingDir s; "
        "6 ports core.ContainerPort*; 7 env core.EnvVar*; 8 resources core.ResourceRequirements; "
        "9 volumeMounts core.VolumeMount*; 10 livenessProbe core.Probe; "
        "11 readinessProbe core.Probe; 12 lifecycle core.Lifecycle; 13 terminationMessagePath s; "
        "14 imagePullPolicy s; 15 securityContext core.SecurityContext; 16 stdin ?; "
        "17 stdinOnce ?; 18 tty ?; 19 envFrom core.EnvFromSource*; 20 terminationMessagePolicy s; "
        "21 volumeDevices core.VolumeDevice*; 22 startupProbe core.Probe; "
        "23 resizePolicy core.ContainerResizePolicy*; 24 restartPolicy s!; "
        "25 restartPolicyRules core.ContainerRestartRule*"
    ),
    "core.EphemeralVolumeSource": "1 volumeClaimTemplate core.PersistentVolumeClaimTemplate",
    "core.Event": (
        "1 metadata meta.ObjectMeta; 2 involvedObject core.ObjectReference; 3 reason s; "
        "4 message s; 5 source core.EventSource; 6 firstTimestamp meta.Time; "
        "7 lastTimestamp meta.Time; 8 count i; 9 type s; 10 eventTime meta.MicroTime; "
        "11 series core.EventSeries; 12 action s; 13 related core.ObjectReference; "
        "14 reportingComponent s!; 15 reportingInstance s!"
    ),
    "core.EventSeries": "1 count i; 2 lastObservedTime meta.MicroTime",
    "core.EventSource": "1 component s; 2 host s",
    "core.EvictionResponder": "1 name s!; 2 priority i!~",
    "core.ExecAction": "1 command s*",
    "core.FCVolumeSource": "1 targetWWNs s*; 2 lun i!; 3 fsType s; 4 readOnly ?; 5 wwids s*",
    "core.FileKeySelector": "1 volumeName s!; 2 path s!; 3 key s!; 4 optional ?!",
    "core.FlexPersistentVolumeSource": (
        "1 driver s!; 2 fsType s; 3 secretRef core.SecretReference; 4 readOnly ?; "
        "5 options {s:s}"
    ),
    "core.FlexVolumeSource": (
        "1 driver s!; 2 fsType s; 3 secretRef core.LocalObjectReference; 4 readOnly ?; "
        "5 options {s:s}"
    ),
    "core.FlockerVolumeSource": "1 datasetName s; 2 datasetUUID s",
    "core.GCEPersistentDiskVolumeSource": "1 pdName s!; 2 fsType s; 3 partition i; 4 readOnly ?",
    "core.GRPCAction": "1 port i!; 2 service s!~; 3 mode s!",
    "core.GitRepoVolumeSource": "1 repository s!; 2 revision s; 3 directory s",
    "core.GlusterfsPersistentVolumeSource": (
        "1 endpoints s!; 2 path s!; 3 readOnly ?; 4 endpointsNamespace s!"
    ),
    "core.GlusterfsVolumeSource": "1 endpoints s!; 2 path s!; 3 readOnly ?",
    "core.HTTPGetAction": (
        "1 path s; 2 port intstr.IntOrString; 3 host s; 4 scheme s; "
        "5 httpHeaders core.HTTPHeader*; 6 protocol s!"
    ),
    "core.HTTPHeader": "1 name s!; 2 value s!",
    "core.HostAlias": "1 ip s!; 2 hostnames s*",
    "core.HostIP": "1 ip s!",
    "core.HostPathVolumeSource": "1 path s!; 2 type s!",
    "core.ISCSIPersistentVolumeSource": (
        "1 targetPortal s!; 2 iqn s!; 3 lun i!; 4 iscsiInterface s; 5 fsType s; 6 readOnly ?; "
        "7 portals s*; 8 chapAuthDiscovery ?; 10 secretRef core.SecretReference; "
        "11 chapAuthSession ?; 12 initiatorName s!"
    ),
    "core.ISCSIVolumeSource": (
        "1 targetPortal s!; 2 iqn s!; 3 lun i!; 4 iscsiInterface s; 5 fsType s; 6 readOnly ?; "
        "7 portals s*; 8 chapAuthDiscovery ?; 10 secretRef core.LocalObjectReference; "
        "11 chapAuthSession ?; 12 initiatorName s!"
    ),
    "core.ImageVolumeSource": "1 reference s; 2 pullPolicy s",
    "core.ImageVolumeStatus": "1 imageRef s",
    "core.KeyToPath": "1 key s!; 2 path s!; 3 mode i!; 4 user i!",
    "core.Lifecycle": (
        "1 postStart core.LifecycleHandler; 2 preStop core.LifecycleHandler; 3 stopSignal s!"
    ),
    "core.LifecycleHandler": (
        "1 exec core.ExecAction; 2 httpGet core.HTTPGetAction; 3 tcpSocket core.TCPSocketAction; "
        "4 sleep core.SleepAction"
    ),
    "core.LimitRange": "1 metadata meta.ObjectMeta; 2 spec core.LimitRangeSpec",
    "core.LimitRangeItem": (
        "1 type s!; 2 max {s:resource.Quantity}; 3 min {s:resource.Quantity}; "
        "4 default {s:resource.Quantity}; 5 defaultRequest {s:resource.Quantity}; "
        "6 maxLimitRequestRatio {s:resource.Quantity}"
    ),
    "core.LimitRangeSpec": "1 limits core.LimitRangeItem*~",
    "core.LinuxContainerUser": "1 uid i!; 2 gid i!; 3 supplementalGroups i*",
    "core.LoadBalancerIngress": "1 ip s; 2 hostname s; 3 ipMode s!; 4 ports core.PortStatus*",
    "core.LoadBalancerStatus": "1 ingress core.LoadBalancerIngress*",
    "core.LocalObjectReference": "1 name s",
    "core.LocalVolumeSource": "1 path s!; 2 fsType s!",
    "core.ModifyVolumeStatus": "1 targetVolumeAttributesClassName s; 2 status s!",
    "core.NFSVolumeSource": "1 server s!; 2 path s!; 3 readOnly ?",
    "core.Namespace": (
        "1 metadata meta.ObjectMeta; 2 spec core.NamespaceSpec; 3 status core.NamespaceStatus"
    ),
    "core.NamespaceCondition": (
        "1 type s!; 2 status s!; 4 lastTransitionTime meta.Time; 5 reason s; 6 message s"
    ),
    "core.NamespaceSpec": "1 finalizers s*",
    "core.NamespaceStatus": "1 phase s; 2 conditions core.NamespaceCondition*",
    "core.Node": "1 metadata meta.ObjectMeta; 2 spec core.NodeSpec; 3 status core.NodeStatus",
    "core.NodeAddress": "1 type s!; 2 address s!",
    "core.NodeAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution core.NodeSelector; "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.PreferredSchedulingTerm*"
    ),
    "core.NodeAllocatableMappedResources": "1 name s!; 2 quantity resource.Quantity~",
    "core.NodeAllocatableOverheadResources": (
        "1 name s!; 2 perPod resource.Quantity; 3 perContainer resource.Quantity"
    ),
    "core.NodeAllocatableResourceClaimStatus": (
        "1 resourceClaimName s!; 2 containers s*; 4 mapping core.NodeAllocatableMappedResources*; "
        "5 overhead core.NodeAllocatableOverheadResources*"
    ),
    "core.NodeCondition": (
        "1 type s!; 2 status s!; 3 lastHeartbeatTime meta.Time; 4 lastTransitionTime meta.Time; "
        "5 reason s; 6 message s"
    ),
    "core.NodeConfigSource": "2 configMap core.ConfigMapNodeConfigSource",
    "core.NodeConfigStatus": (
        "1 assigned core.NodeConfigSource; 2 active core.NodeConfigSource; "
        "3 lastKnownGood core.NodeConfigSource; 4 error s"
    ),
    "core.NodeDaemonEndpoints": "1 kubeletEndpoint core.DaemonEndpoint",
    "core.NodeFeatures": "1 supplementalGroupsPolicy ?!",
    "core.NodePodPreemptionPolicy": "1 disableResizePreemption s*",
    "core.NodeRuntimeHandler": "1 name s!; 2 features core.NodeRuntimeHandlerFeatures",
    "core.NodeRuntimeHandlerFeatures": "1 recursiveReadOnlyMounts ?!; 2 userNamespaces ?!",
    "core.NodeSelector": "1 nodeSelectorTerms core.NodeSelectorTerm*~",
    "core.NodeSelectorRequirement": "1 key s!; 2 operator s!; 3 values s*",
    "core.NodeSelectorTerm": (
        "1 matchExpressions core.NodeSelectorRequirement*; "
        "2 matchFields core.NodeSelectorRequirement*"
    ),
    "core.NodeSpec": (
        "1 podCIDR s; 2 externalID s; 3 providerID s; 4 unschedulable ?; 5 taints core.Taint*; "
        "6 configSource core.NodeConfigSource; 7 podCIDRs s*; "
        "8 podPreemptionPolicy core.NodePodPreemptionPolicy"
    ),
    "core.NodeStatus": (
        "1 capacity {s:resource.Quantity}; 2 allocatable {s:resource.Quantity}; 3 phase s; "
        "4 conditions core.NodeCondition*; 5 addresses core.NodeAddress*; "
        "6 daemonEndpoints core.NodeDaemonEndpoints; 7 nodeInfo core.NodeSystemInfo; "
        "8 images core.ContainerImage*; 9 volumesInUse s*; "
        "10 volumesAttached core.AttachedVolume*; 11 config core.NodeConfigStatus; "
        "12 runtimeHandlers core.NodeRuntimeHandler*; 13 features core.NodeFeatures; "
        "14 declaredFeatures s*"
    ),
    "core.NodeSwapStatus": "1 capacity i!",
    "core.NodeSystemInfo": (
        "1 machineID s!; 2 systemUUID s!; 3 bootID s!; 4 kernelVersion s!; 5 osImage s!; "
        "6 containerRuntimeVersion s!; 7 kubeletVersion s!; 8 kubeProxyVersion s!; "
        "9 operatingSystem s!; 10 architecture s!; 11 swap core.NodeSwapStatus"
    ),
    "core.ObjectFieldSelector": "1 apiVersion s; 2 fieldPath s!",
    "core.ObjectReference": (
        "1 kind s; 2 namespace s; 3 name s; 4 uid s; 5 apiVersion s; 6 resourceVersion s; "
        "7 fieldPath s"
    ),
    "core.PersistentVolume": (
        "1 metadata meta.ObjectMeta; 2 spec core.PersistentVolumeSpec; "
        "3 status core.PersistentVolumeStatus"
    ),
    "core.PersistentVolumeClaim": (
        "1 metadata meta.ObjectMeta; 2 spec core.PersistentVolumeClaimSpec; "
        "3 status core.PersistentVolumeClaimStatus"
    ),
    "core.PersistentVolumeClaimCondition": (
        "1 type s!; 2 status s!; 3 lastProbeTime meta.Time; 4 lastTransitionTime meta.Time; "
        "5 reason s; 6 message s"
    ),
    "core.PersistentVolumeClaimSpec": (
        "1 accessModes s*; 2 resources core.VolumeResourceRequirements; 3 volumeName s; "
        "4 selector meta.LabelSelector; 5 storageClassName s!; 6 volumeMode s!; "
        "7 dataSource core.TypedLocalObjectReference; 8 dataSourceRef core.TypedObjectReference; "
        "9 volumeAttributesClassName s!"
    ),
    "core.PersistentVolumeClaimStatus": (
        "1 phase s; 2 accessModes s*; 3 capacity {s:resource.Quantity}; "
        "4 conditions core.PersistentVolumeClaimCondition*; "
        "5 allocatedResources {s:resource.Quantity}; 7 allocatedResourceStatuses {s:s}; "
        "8 currentVolumeAttributesClassName s!; 9 modifyVolumeStatus core.ModifyVolumeStatus; "
        "10 healthStatus core.VolumeHealthStatus"
    ),
    "core.PersistentVolumeClaimTemplate": (
        "1 metadata meta.ObjectMeta; 2 spec core.PersistentVolumeClaimSpec"
    ),
    "core.PersistentVolumeClaimVolumeSource": "1 claimName s!; 2 readOnly ?",
    "core.PersistentVolumeSource": (
        "1 gcePersistentDisk core.GCEPersistentDiskVolumeSource; "
        "2 awsElasticBlockStore core.AWSElasticBlockStoreVolumeSource; "
        "3 hostPath core.HostPathVolumeSource; 4 glusterfs core.GlusterfsPersistentVolumeSource; "
        "5 nfs core.NFSVolumeSource; 6 rbd core.RBDPersistentVolumeSource; "
        "7 iscsi core.ISCSIPersistentVolumeSource; 8 cinder core.CinderPersistentVolumeSource; "
        "9 cephfs core.CephFSPersistentVolumeSource; 10 fc core.FCVolumeSource; "
        "11 flocker core.FlockerVolumeSource; 12 flexVolume core.FlexPersistentVolumeSource; "
        "13 azureFile core.AzureFilePersistentVolumeSource; "
        "14 vsphereVolume core.VsphereVirtualDiskVolumeSource; "
        "15 quobyte core.QuobyteVolumeSource; 16 azureDisk core.AzureDiskVolumeSource; "
        "17 photonPersistentDisk core.PhotonPersistentDiskVolumeSource; "
        "18 portworxVolume core.PortworxVolumeSource; "
        "19 scaleIO core.ScaleIOPersistentVolumeSource; 20 local core.LocalVolumeSource; "
        "21 storageos core.StorageOSPersistentVolumeSource; "
        "22 csi core.CSIPersistentVolumeSource"
    ),
    "core.PersistentVolumeSpec": (
        "1 capacity {s:resource.Quantity}; 2 ^ core.PersistentVolumeSource; 3 accessModes s*; "
        "4 claimRef core.ObjectReference; 5 persistentVolumeReclaimPolicy s; "
        "6 storageClassName s; 7 mountOptions s*; 8 volumeMode s!; "
        "9 nodeAffinity core.VolumeNodeAffinity; 10 volumeAttributesClassName s!"
    ),
    "core.PersistentVolumeStatus": (
        "1 phase s; 2 message s; 3 reason s; 4 lastPhaseTransitionTime meta.Time"
    ),
    "core.PhotonPersistentDiskVolumeSource": "1 pdID s!; 2 fsType s",
    "core.Pod": "1 metadata meta.ObjectMeta; 2 spec core.PodSpec; 3 status core.PodStatus",
    "core.PodAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution core.PodAffinityTerm*; "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.WeightedPodAffinityTerm*"
    ),
    "core.PodAffinityTerm": (
        "1 labelSelector meta.LabelSelector; 2 namespaces s*; 3 topologyKey s!; "
        "4 namespaceSelector meta.LabelSelector; 5 matchLabelKeys s*; 6 mismatchLabelKeys s*"
    ),
    "core.PodAntiAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution core.PodAffinityTerm*; "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.WeightedPodAffinityTerm*"
    ),
    "core.PodCertificateProjection": (
        "1 signerName s; 2 keyType s; 3 maxExpirationSeconds i!; 4 credentialBundlePath s; "
        "5 keyPath s; 6 certificateChainPath s; 7 userAnnotations {s:s}; 8 user i!"
    ),
    "core.PodCondition": (
        "1 type s!; 2 status s!; 3 lastProbeTime meta.Time; 4 lastTransitionTime meta.Time; "
        "5 reason s; 6 message s; 7 observedGeneration i"
    ),
    "core.PodDNSConfig": "1 nameservers s*; 2 searches s*; 3 options core.PodDNSConfigOption*",
    "core.PodDNSConfigOption": "1 name s; 2 value s!",
    "core.PodExtendedResourceClaimStatus": (
        "1 requestMappings core.ContainerExtendedResourceRequest*~; 2 resourceClaimName s!"
    ),
    "core.PodIP": "1 ip s!",
    "core.PodOS": "1 name s!",
    "core.PodReadinessGate": "1 conditionType s!",
    "core.PodResourceClaim": "1 name s!; 3 resourceClaimName s!; 4 resourceClaimTemplateName s!",
    "core.PodResourceClaimStatus": "1 name s!; 2 resourceClaimName s!",
    "core.PodSchedulingGate": "1 name s!",
    "core.PodSchedulingGroup": "1 podGroupName s!",
    "core.PodSecurityContext": (
        "1 seLinuxOptions core.SELinuxOptions; 2 runAsUser i!; 3 runAsNonRoot ?!; "
        "4 supplementalGroups i*; 5 fsGroup i!; 6 runAsGroup i!; 7 sysctls core.Sysctl*; "
        "8 windowsOptions core.WindowsSecurityContextOptions; 9 fsGroupChangePolicy s!; "
        "10 seccompProfile core.SeccompProfile; 11 appArmorProfile core.AppArmorProfile; "
        "12 supplementalGroupsPolicy s!; 13 seLinuxChangePolicy s!"
    ),
    "core.PodSpec": (
        "1 volumes core.Volume*; 2 containers core.Container*~; 3 restartPolicy s; "
        "4 terminationGracePeriodSeconds i!; 5 activeDeadlineSeconds i!; 6 dnsPolicy s; "
        "7 nodeSelector {s:s}; 8 serviceAccountName s; 9 serviceAccount s; 10 nodeName s; "
        "11 hostNetwork ?; 12 hostPID ?; 13 hostIPC ?; "
        "14 securityContext core.PodSecurityContext; "
        "15 imagePullSecrets core.LocalObjectReference*; 16 hostname s; 17 subdomain s; "
        "18 affinity core.Affinity; 19 schedulerName s; 20 initContainers core.Container*; "
        "21 automountServiceAccountToken ?!; 22 tolerations core.Toleration*; "
        "23 hostAliases core.HostAlias*; 24 priorityClassName s; 25 priority i!; "
        "26 dnsConfig core.PodDNSConfig; 27 shareProcessNamespace ?!; "
        "28 readinessGates core.PodReadinessGate*; 29 runtimeClassName s!; "
        "30 enableServiceLinks ?!; 31 preemptionPolicy s!; 32 overhead {s:resource.Quantity}; "
        "33 topologySpreadConstraints core.TopologySpreadConstraint*; "
        "34 ephemeralContainers core.EphemeralContainer*; 35 setHostnameAsFQDN ?!; "
        "36 os core.PodOS; 37 hostUsers ?!; 38 schedulingGates core.PodSchedulingGate*; "
        "39 resourceClaims core.PodResourceClaim*; 40 resources core.ResourceRequirements; "
        "41 hostnameOverride s!; 43 schedulingGroup core.PodSchedulingGroup; "
        "44 evictionResponders core.EvictionResponder*"
    ),
    "core.PodStatus": (
        "1 phase s; 2 conditions core.PodCondition*; 3 message s; 4 reason s; 5 hostIP s; "
        "6 podIP s; 7 startTime meta.Time; 8 containerStatuses core.ContainerStatus*; "
        "9 qosClass s; 10 initContainerStatuses core.ContainerStatus*; 11 nominatedNodeName s; "
        "12 podIPs core.PodIP*; 13 ephemeralContainerStatuses core.ContainerStatus*; 14 resize s; "
        "15 resourceClaimStatuses core.PodResourceClaimStatus*; 16 hostIPs core.HostIP*; "
        "17 observedGeneration i; "
        "18 extendedResourceClaimStatus core.PodExtendedResourceClaimStatus; "
        "19 allocatedResources {s:resource.Quantity}; 20 resources core.ResourceRequirements; "
        "21 nodeAllocatableResourceClaimStatuses core.NodeAllocatableResourceClaimStatus*; "
        "22 volumeHealth core.PodVolumeHealth*"
    ),
    "core.PodTemplate": "1 metadata meta.ObjectMeta; 2 template core.PodTemplateSpec",
    "core.PodTemplateSpec": "1 metadata meta.ObjectMeta; 2 spec core.PodSpec",
    "core.PodVolumeHealth": (
        "1 name s!; 2 healthConditions core.VolumeHealthCondition*; "
        "3 lastTransitionTime meta.Time"
    ),
    "core.PortStatus": "1 port i!; 2 protocol s!; 3 error s!",
    "core.PortworxVolumeSource": "1 volumeID s!; 2 fsType s; 3 readOnly ?",
    "core.PreferredSchedulingTerm": "1 weight i!; 2 preference core.NodeSelectorTerm",
    "core.Probe": (
        "1 ^ core.ProbeHandler; 2 initialDelaySeconds i; 3 timeoutSeconds i; 4 periodSeconds i; "
        "5 successThreshold i; 6 failureThreshold i; 7 terminationGracePeriodSeconds i!"
    ),
    "core.ProbeHandler": (
        "1 exec core.ExecAction; 2 httpGet core.HTTPGetAction; 3 tcpSocket core.TCPSocketAction; "
        "4 grpc core.GRPCAction"
    ),
    "core.ProjectedVolumeSource": (
        "1 sources core.VolumeProjection*~; 2 defaultMode i!; 3 defaultUser i!"
    ),
    "core.QuobyteVolumeSource": (
        "1 registry s!; 2 volume s!; 3 readOnly ?; 4 user s; 5 group s; 6 tenant s"
    ),
    "core.RBDPersistentVolumeSource": (
        "1 monitors s*~; 2 image s!; 3 fsType s; 4 pool s; 5 user s; 6 keyring s; "
        "7 secretRef core.SecretReference; 8 readOnly ?"
    ),
    "core.RBDVolumeSource": (
        "1 monitors s*~; 2 image s!; 3 fsType s; 4 pool s; 5 user s; 6 keyring s; "
        "7 secretRef core.LocalObjectReference; 8 readOnly ?"
    ),
    "core.RangeAllocation": "1 metadata meta.ObjectMeta; 2 range s!; 3 data b!~",
    "core.ReplicationController": (
        "1 metadata meta.ObjectMeta; 2 spec core.ReplicationControllerSpec; "
        "3 status core.ReplicationControllerStatus"
    ),
    "core.ReplicationControllerCondition": (
        "1 type s!; 2 status s!; 3 lastTransitionTime meta.Time; 4 reason s; 5 message s"
    ),
    "core.ReplicationControllerSpec": (
        "1 replicas i!; 2 selector {s:s}; 3 template core.PodTemplateSpec; 4 minReadySeconds i"
    ),
    "core.ReplicationControllerStatus": (
        "1 replicas i!; 2 fullyLabeledReplicas i; 3 observedGeneration i; 4 readyReplicas i; "
        "5 availableReplicas i; 6 conditions core.ReplicationControllerCondition*"
    ),
    "core.ResourceClaim": "1 name s!; 2 request s",
    "core.ResourceFieldSelector": "1 containerName s; 2 resource s!; 3 divisor resource.Quantity",
    "core.ResourceHealth": "1 resourceID s!; 2 health s; 6 message s!",
    "core.ResourceQuota": (
        "1 metadata meta.ObjectMeta; 2 spec core.ResourceQuotaSpec; "
        "3 status core.ResourceQuotaStatus"
    ),
    "core.ResourceQuotaSpec": (
        "1 hard {s:resource.Quantity}; 2 scopes s*; 3 scopeSelector core.ScopeSelector"
    ),
    "core.ResourceQuotaStatus": "1 hard {s:resource.Quantity}; 2 used {s:resource.Quantity}",
    "core.ResourceRequirements": (
        "1 limits {s:resource.Quantity}; 2 requests {s:resource.Quantity}; "
        "3 claims core.ResourceClaim*"
    ),
    "core.ResourceStatus": "1 name s!; 2 resources core.ResourceHealth*",
    "core.SELinuxOptions": "1 user s; 2 role s; 3 type s; 4 level s",
    "core.ScaleIOPersistentVolumeSource": (
        "1 gateway s!; 2 system s!; 3 secretRef core.SecretReference~; 4 sslEnabled ?; "
        "5 protectionDomain s; 6 storagePool s; 7 storageMode s; 8 volumeName s; 9 fsType s; "
        "10 readOnly ?"
    ),
    "core.ScaleIOVolumeSource": (
        "1 gateway s!; 2 system s!; 3 secretRef core.LocalObjectReference~; 4 sslEnabled ?; "
        "5 protectionDomain s; 6 storagePool s; 7 storageMode s; 8 volumeName s; 9 fsType s; "
        "10 readOnly ?"
    ),
    "core.ScopeSelector": "1 matchExpressions core.ScopedResourceSelectorRequirement*",
    "core.ScopedResourceSelectorRequirement": "1 scopeName s!; 2 operator s!; 3 values s*",
    "core.SeccompProfile": "1 type s!; 2 localhostProfile s!",
    "core.Secret": (
        "1 metadata meta.ObjectMeta; 2 data {s:b}; 3 type s; 4 stringData {s:s}; 5 immutable ?!"
    ),
    "core.SecretEnvSource": "1 ^ core.LocalObjectReference; 2 optional ?!",
    "core.SecretKeySelector": "1 ^ core.LocalObjectReference; 2 key s!; 3 optional ?!",
    "core.SecretProjection": (
        "1 ^ core.LocalObjectReference; 2 items core.KeyToPath*; 4 optional ?!"
    ),
    "core.SecretReference": "1 name s; 2 namespace s",
    "core.SecretVolumeSource": (
        "1 secretName s; 2 items core.KeyToPath*; 3 defaultMode i!; 4 optional ?!; "
        "5 defaultUser i!"
    ),
    "core.SecurityContext": (
        "1 capabilities core.Capabilities; 2 privileged ?!; 3 seLinuxOptions core.SELinuxOptions; "
        "4 runAsUser i!; 5 runAsNonRoot ?!; 6 readOnlyRootFilesystem ?!; "
        "7 allowPrivilegeEscalation ?!; 8 runAsGroup i!; 9 procMount s!; "
        "10 windowsOptions core.WindowsSecurityContextOptions; "
        "11 seccompProfile core.SeccompProfile; 12 appArmorProfile core.AppArmorProfile"
    ),
    "core.Service": (
        "1 metadata meta.ObjectMeta; 2 spec core.ServiceSpec; 3 status core.ServiceStatus"
    ),
    "core.ServiceAccount": (
        "1 metadata meta.ObjectMeta; 2 secrets core.ObjectReference*; "
        "3 imagePullSecrets core.LocalObjectReference*; 4 automountServiceAccountToken ?!"
    ),
    "core.ServiceAccountTokenProjection": (
        "1 audience s; 2 expirationSeconds i!; 3 path s!; 4 user i!"
    ),
    "core.ServicePort": (
        "1 name s; 2 protocol s; 3 port i!; 4 targetPort intstr.IntOrString; 5 nodePort i; "
        "6 appProtocol s!"
    ),
    "core.ServiceSpec": (
        "1 ports core.ServicePort*; 2 selector {s:s}; 3 clusterIP s; 4 type s; 5 externalIPs s*; "
        "7 sessionAffinity s; 8 loadBalancerIP s; 9 loadBalancerSourceRanges s*; "
        "10 externalName s; 11 externalTrafficPolicy s; 12 healthCheckNodePort i; "
        "13 publishNotReadyAddresses ?; 14 sessionAffinityConfig core.SessionAffinityConfig; "
        "17 ipFamilyPolicy s!; 18 clusterIPs s*; 19 ipFamilies s*; "
        "20 allocateLoadBalancerNodePorts ?!; 21 loadBalancerClass s!; "
        "22 internalTrafficPolicy s!; 23 trafficDistribution s!"
    ),
    "core.ServiceStatus": "1 loadBalancer core.LoadBalancerStatus; 2 conditions meta.Condition*",
    "core.SessionAffinityConfig": "1 clientIP core.ClientIPConfig",
    "core.SleepAction": "1 seconds i!",
    "core.StorageOSPersistentVolumeSource": (
        "1 volumeName s; 2 volumeNamespace s; 3 fsType s; 4 readOnly ?; "
        "5 secretRef core.ObjectReference"
    ),
    "core.StorageOSVolumeSource": (
        "1 volumeName s; 2 volumeNamespace s; 3 fsType s; 4 readOnly ?; "
        "5 secretRef core.LocalObjectReference"
    ),
    "core.Sysctl": "1 name s!; 2 value s!",
    "core.TCPSocketAction": "1 port intstr.IntOrString; 2 host s",
    "core.Taint": "1 key s!; 2 value s; 3 effect s!; 4 timeAdded meta.Time",
    "core.Toleration": "1 key s; 2 operator s; 3 value s; 4 effect s; 5 tolerationSeconds i!",
    "core.TopologySelectorLabelRequirement": "1 key s!; 2 values s*~",
    "core.TopologySelectorTerm": "1 matchLabelExpressions core.TopologySelectorLabelRequirement*",
    "core.TopologySpreadConstraint": (
        "1 maxSkew i!; 2 topologyKey s!; 3 whenUnsatisfiable s!; "
        "4 labelSelector meta.LabelSelector; 5 minDomains i!; 6 nodeAffinityPolicy s!; "
        "7 nodeTaintsPolicy s!; 8 matchLabelKeys s*"
    ),
    "core.TypedLocalObjectReference": "1 apiGroup s!~; 2 kind s!; 3 name s!",
    "core.TypedObjectReference": "1 apiGroup s!~; 2 kind s!; 3 name s!; 4 namespace s!",
    "core.Volume": "1 name s!; 2 ^ core.VolumeSource",
    "core.VolumeDevice": "1 name s!; 2 devicePath s!",
    "core.VolumeHealthCondition": "1 status s!; 2 reason s!; 3 message s",
    "core.VolumeHealthStatus": (
        "1 healthConditions core.VolumeHealthCondition*; 2 lastTransitionTime meta.Time"
    ),
    "core.VolumeMount": (
        "1 name s!; 2 readOnly ?; 3 mountPath s!; 4 subPath s; 5 mountPropagation s!; "
        "6 subPathExpr s; 7 recursiveReadOnly s!; 8 bindMountOptions s*"
    ),
    "core.VolumeMountStatus": (
        "1 name s!; 2 mountPath s!; 3 readOnly ?; 4 recursiveReadOnly s!; "
        "5 volumeStatus core.VolumeStatus"
    ),
    "core.VolumeNodeAffinity": "1 required core.NodeSelector",
    "core.VolumeProjection": (
        "1 secret core.SecretProjection; 2 downwardAPI core.DownwardAPIProjection; "
        "3 configMap core.ConfigMapProjection; "
        "4 serviceAccountToken core.ServiceAccountTokenProjection; "
        "5 clusterTrustBundle core.ClusterTrustBundleProjection; "
        "6 podCertificate core.PodCertificateProjection"
    ),
    "core.VolumeResourceRequirements": (
        "1 limits {s:resource.Quantity}; 2 requests {s:resource.Quantity}"
    ),
    "core.VolumeSource": (
        "1 hostPath core.HostPathVolumeSource; 2 emptyDir core.EmptyDirVolumeSource; "
        "3 gcePersistentDisk core.GCEPersistentDiskVolumeSource; "
        "4 awsElasticBlockStore core.AWSElasticBlockStoreVolumeSource; "
        "5 gitRepo core.GitRepoVolumeSource; 6 secret core.SecretVolumeSource; "
        "7 nfs core.NFSVolumeSource; 8 iscsi core.ISCSIVolumeSource; "
        "9 glusterfs core.GlusterfsVolumeSource; "
        "10 persistentVolumeClaim core.PersistentVolumeClaimVolumeSource; "
        "11 rbd core.RBDVolumeSource; 12 flexVolume core.FlexVolumeSource; "
        "13 cinder core.CinderVolumeSource; 14 cephfs core.CephFSVolumeSource; "
        "15 flocker core.FlockerVolumeSource; 16 downwardAPI core.DownwardAPIVolumeSource; "
        "17 fc core.FCVolumeSource; 18 azureFile core.AzureFileVolumeSource; "
        "19 configMap core.ConfigMapVolumeSource; "
        "20 vsphereVolume core.VsphereVirtualDiskVolumeSource; "
        "21 quobyte core.QuobyteVolumeSource; 22 azureDisk core.AzureDiskVolumeSource; "
        "23 photonPersistentDisk core.PhotonPersistentDiskVolumeSource; "
        "24 portworxVolume core.PortworxVolumeSource; 25 scaleIO core.ScaleIOVolumeSource; "
        "26 projected core.ProjectedVolumeSource; 27 storageos core.StorageOSVolumeSource; "
        "28 csi core.CSIVolumeSource; 29 ephemeral core.EphemeralVolumeSource; "
        "30 image core.ImageVolumeSource"
    ),
    "core.VolumeStatus": "1 image core.ImageVolumeStatus",
    "core.VsphereVirtualDiskVolumeSource": (
        "1 volumePath s!; 2 fsType s; 3 storagePolicyName s; 4 storagePolicyID s"
    ),
    "core.WeightedPodAffinityTerm": "1 weight i!; 2 podAffinityTerm core.PodAffinityTerm",
    "core.WindowsSecurityContextOptions": (
        "1 gmsaCredentialSpecName s!; 2 gmsaCredentialSpec s!; 3 runAsUserName s!; "
        "4 hostProcess ?!"
    ),
    "discovery.Endpoint": (
        "1 addresses s*~; 2 conditions discovery.EndpointConditions; 3 hostname s!; "
        "4 targetRef core.ObjectReference; 5 deprecatedTopology {s:s}; 6 nodeName s!; 7 zone s!; "
        "8 hints discovery.EndpointHints"
    ),
    "discovery.EndpointConditions": "1 ready ?!; 2 serving ?!; 3 terminating ?!",
    "discovery.EndpointHints": "1 forZones discovery.ForZone*; 2 forNodes discovery.ForNode*",
    "discovery.EndpointPort": "1 name s!; 2 protocol s!; 3 port i!; 4 appProtocol s!",
    "discovery.EndpointSlice": (
        "1 metadata meta.ObjectMeta; 2 endpoints discovery.Endpoint*~; "
        "3 ports discovery.EndpointPort*~; 4 addressType s!"
    ),
    "discovery.ForNode": "1 name s!",
    "discovery.ForZone": "1 name s!",
    "meta.Condition": (
        "1 type s!; 2 status s!; 3 observedGeneration i; 4 lastTransitionTime meta.Time; "
        "5 reason s!; 6 message s!"
    ),
    "meta.DeleteOptions": (
        "1 gracePeriodSeconds i!; 2 preconditions meta.Preconditions; 3 orphanDependents ?!; "
        "4 propagationPolicy s!; 5 dryRun s*; "
        "6 ignoreStoreReadErrorWithClusterBreakingPotential ?!"
    ),
    "meta.FieldSelectorRequirement": "1 key s!; 2 operator s!; 3 values s*",
    "meta.LabelSelector": "1 matchLabels {s:s}; 2 matchExpressions meta.LabelSelectorRequirement*",
    "meta.LabelSelectorRequirement": "1 key s!; 2 operator s!; 3 values s*",
    "meta.ManagedFieldsEntry": (
        "1 manager s; 2 operation s; 3 apiVersion s; 4 time meta.Time; 6 fieldsType s; "
        "7 fieldsV1 meta.FieldsV1; 8 subresource s"
    ),
    "meta.ObjectMeta": (
        "1 name s; 2 generateName s; 3 namespace s; 4 selfLink s; 5 uid s; 6 resourceVersion s; "
        "7 generation i; 8 creationTimestamp meta.Time; 9 deletionTimestamp meta.Time; "
        "10 deletionGracePeriodSeconds i!; 11 labels {s:s}; 12 annotations {s:s}; "
        "13 ownerReferences meta.OwnerReference*; 14 finalizers s*; "
        "17 managedFields meta.ManagedFieldsEntry*"
    ),
    "meta.OwnerReference": (
        "1 kind s!; 3 name s!; 4 uid s!; 5 apiVersion s!; 6 controller ?!; "
        "7 blockOwnerDeletion ?!"
    ),
    "meta.PartialObjectMetadata": "1 metadata meta.ObjectMeta",
    "meta.Preconditions": "1 uid s!; 2 resourceVersion s!",
    "networking.HTTPIngressPath": "1 path s; 2 backend networking.IngressBackend; 3 pathType s!~",
    "networking.HTTPIngressRuleValue": "1 paths networking.HTTPIngressPath*~",
    "networking.IPAddress": "1 metadata meta.ObjectMeta; 2 spec networking.IPAddressSpec",
    "networking.IPAddressSpec": "1 parentRef networking.ParentReference",
    "networking.IPBlock": "1 cidr s!; 2 except s*",
    "networking.Ingress": (
        "1 metadata meta.ObjectMeta; 2 spec networking.IngressSpec; "
        "3 status networking.IngressStatus"
    ),
    "networking.IngressBackend": (
        "3 resource core.TypedLocalObjectReference; 4 service networking.IngressServiceBackend"
    ),
    "networking.IngressClass": "1 metadata meta.ObjectMeta; 2 spec networking.IngressClassSpec",
    "networking.IngressClassParametersReference": (
        "1 apiGroup s!; 2 kind s!; 3 name s!; 4 scope s!~; 5 namespace s!"
    ),
    "networking.IngressClassSpec": (
        "1 controller s; 2 parameters networking.IngressClassParametersReference"
    ),
    "networking.IngressLoadBalancerIngress": (
        "1 ip s; 2 hostname s; 4 ports networking.IngressPortStatus*"
    ),
    "networking.IngressLoadBalancerStatus": "1 ingress networking.IngressLoadBalancerIngress*",
    "networking.IngressPortStatus": "1 port i!; 2 protocol s!; 3 error s!",
    "networking.IngressRule": "1 host s; 2 ^ networking.IngressRuleValue",
    "networking.IngressRuleValue": "1 http networking.HTTPIngressRuleValue",
    "networking.IngressServiceBackend": "1 name s!; 2 port networking.ServiceBackendPort",
    "networking.IngressSpec": (
        "1 defaultBackend networking.IngressBackend; 2 tls networking.IngressTLS*; "
        "3 rules networking.IngressRule*; 4 ingressClassName s!"
    ),
    "networking.IngressStatus": "1 loadBalancer networking.IngressLoadBalancerStatus",
    "networking.IngressTLS": "1 hosts s*; 2 secretName s",
    "networking.NetworkPolicy": "1 metadata meta.ObjectMeta; 2 spec networking.NetworkPolicySpec",
    "networking.NetworkPolicyEgressRule": (
        "1 ports networking.NetworkPolicyPort*; 2 to networking.NetworkPolicyPeer*"
    ),
    "networking.NetworkPolicyIngressRule": (
        "1 ports networking.NetworkPolicyPort*; 2 from networking.NetworkPolicyPeer*"
    ),
    "networking.NetworkPolicyPeer": (
        "1 podSelector meta.LabelSelector; 2 namespaceSelector meta.LabelSelector; "
        "3 ipBlock networking.IPBlock"
    ),
    "networking.NetworkPolicyPort": "1 protocol s!; 2 port intstr.IntOrString; 3 endPort i!",
    "networking.NetworkPolicySpec": (
        "1 podSelector meta.LabelSelector; 2 ingress networking.NetworkPolicyIngressRule*; "
        "3 egress networking.NetworkPolicyEgressRule*; 4 policyTypes s*"
    ),
    "networking.ParentReference": "1 group s; 2 resource s; 3 namespace s; 4 name s",
    "networking.ServiceBackendPort": "1 name s; 2 number i",
    "networking.ServiceCIDR": (
        "1 metadata meta.ObjectMeta; 2 spec networking.ServiceCIDRSpec; "
        "3 status networking.ServiceCIDRStatus"
    ),
    "networking.ServiceCIDRSpec": "1 cidrs s*",
    "networking.ServiceCIDRStatus": "1 conditions meta.Condition*",
    "policy.Eviction": "1 metadata meta.ObjectMeta; 2 deleteOptions meta.DeleteOptions",
    "policy.PodDisruptionBudget": (
        "1 metadata meta.ObjectMeta; 2 spec policy.PodDisruptionBudgetSpec; "
        "3 status policy.PodDisruptionBudgetStatus"
    ),
    "policy.PodDisruptionBudgetSpec": (
        "1 minAvailable intstr.IntOrString; 2 selector meta.LabelSelector; "
        "3 maxUnavailable intstr.IntOrString; 4 unhealthyPodEvictionPolicy s!"
    ),
    "policy.PodDisruptionBudgetStatus": (
        "1 observedGeneration i; 2 disruptedPods {s:meta.Time}; 3 disruptionsAllowed i!; "
        "4 currentHealthy i!; 5 desiredHealthy i!; 6 expectedPods i!; "
        "7 conditions meta.Condition*"
    ),
    "rbac.AggregationRule": "1 clusterRoleSelectors meta.LabelSelector*",
    "rbac.ClusterRole": (
        "1 metadata meta.ObjectMeta; 2 rules rbac.PolicyRule*~; "
        "3 aggregationRule rbac.AggregationRule"
    ),
    "rbac.ClusterRoleBinding": (
        "1 metadata meta.ObjectMeta; 2 subjects rbac.Subject*; 3 roleRef rbac.RoleRef"
    ),
    "rbac.PolicyRule": (
        "1 verbs s*~; 2 apiGroups s*; 3 resources s*; 4 resourceNames s*; 5 nonResourceURLs s*"
    ),
    "rbac.Role": "1 metadata meta.ObjectMeta; 2 rules rbac.PolicyRule*~",
    "rbac.RoleBinding": (
        "1 metadata meta.ObjectMeta; 2 subjects rbac.Subject*; 3 roleRef rbac.RoleRef"
    ),
    "rbac.RoleRef": "1 apiGroup s!; 2 kind s!; 3 name s!",
    "rbac.Subject": "1 kind s!; 2 apiGroup s; 3 name s!; 4 namespace s",
    "scheduling.PriorityClass": (
        "1 metadata meta.ObjectMeta; 2 value i!; 3 globalDefault ?; 4 description s; "
        "5 preemptionPolicy s!"
    ),
    "schedulingA3.TopologyConstraint": "1 key s!",
    "schedulingA3.WorkloadPodGroupAllDisruptionMode": "",
    "schedulingA3.WorkloadPodGroupBasicSchedulingPolicy": "",
    "schedulingA3.WorkloadPodGroupDisruptionMode": (
        "1 single schedulingA3.WorkloadPodGroupSingleDisruptionMode; "
        "2 all schedulingA3.WorkloadPodGroupAllDisruptionMode"
    ),
    "schedulingA3.WorkloadPodGroupGangSchedulingPolicy": "1 minCount i!",
    "schedulingA3.WorkloadPodGroupResourceClaim": (
        "1 name s!; 2 resourceClaimName s!; 3 resourceClaimTemplateName s!"
    ),
    "schedulingA3.WorkloadPodGroupSchedulingConstraints": (
        "1 topology schedulingA3.TopologyConstraint*"
    ),
    "schedulingA3.WorkloadPodGroupSchedulingPolicy": (
        "1 basic schedulingA3.WorkloadPodGroupBasicSchedulingPolicy; "
        "2 gang schedulingA3.WorkloadPodGroupGangSchedulingPolicy"
    ),
    "schedulingA3.WorkloadPodGroupSingleDisruptionMode": "",
    "storage.CSIDriver": "1 metadata meta.ObjectMeta; 2 spec storage.CSIDriverSpec",
    "storage.CSIDriverSpec": (
        "1 attachRequired ?!; 2 podInfoOnMount ?!; 3 volumeLifecycleModes s*; "
        "4 storageCapacity ?!; 5 fsGroupPolicy s!; 6 tokenRequests storage.TokenRequest*; "
        "7 requiresRepublish ?!; 8 seLinuxMount ?!; 9 nodeAllocatableUpdatePeriodSeconds i!; "
        "10 serviceAccountTokenInSecrets ?!; 11 preventPodSchedulingIfMissing ?!"
    ),
    "storage.CSINode": (
        "1 metadata meta.ObjectMeta; 2 spec storage.CSINodeSpec; 3 status storage.CSINodeStatus"
    ),
    "storage.CSINodeDriver": (
        "1 name s!; 2 nodeID s!; 3 topologyKeys s*~; 4 allocatable storage.VolumeNodeResources"
    ),
    "storage.CSINodeSpec": "1 drivers storage.CSINodeDriver*~",
    "storage.CSINodeStatus": "1 storageHealth storage.StorageHealth*",
    "storage.CSIStorageCapacity": (
        "1 metadata meta.ObjectMeta; 2 nodeTopology meta.LabelSelector; 3 storageClassName s!; "
        "4 capacity resource.Quantity; 5 maximumVolumeSize resource.Quantity"
    ),
    "storage.StorageClass": (
        "1 metadata meta.ObjectMeta; 2 provisioner s!; 3 parameters {s:s}; 4 reclaimPolicy s!; "
        "5 mountOptions s*; 6 allowVolumeExpansion ?!; 7 volumeBindingMode s!; "
        "8 allowedTopologies core.TopologySelectorTerm*"
    ),
    "storage.StorageHealth": "1 name s!; 2 healthConditions storage.StorageHealthCondition*",
    "storage.StorageHealthCondition": (
        "1 status s!; 2 reason s!; 3 message s; 4 accessMode s!; 5 volumeMode s!; "
        "6 lastTransitionTime meta.Time"
    ),
    "storage.TokenRequest": "1 audience s!; 2 expirationSeconds i!",
    "storage.VolumeAttachment": (
        "1 metadata meta.ObjectMeta; 2 spec storage.VolumeAttachmentSpec; "
        "3 status storage.VolumeAttachmentStatus"
    ),
    "storage.VolumeAttachmentSource": (
        "1 persistentVolumeName s!; 2 inlineVolumeSpec core.PersistentVolumeSpec"
    ),
    "storage.VolumeAttachmentSpec": (
        "1 attacher s!; 2 source storage.VolumeAttachmentSource; 3 nodeName s!"
    ),
    "storage.VolumeAttachmentStatus": (
        "1 attached ?!; 2 attachmentMetadata {s:s}; 3 attachError storage.VolumeError; "
        "4 detachError storage.VolumeError"
    ),
    "storage.VolumeAttributesClass": (
        "1 metadata meta.ObjectMeta; 2 driverName s!; 3 parameters {s:s}"
    ),
    "storage.VolumeError": "1 time meta.Time; 2 message s; 3 errorCode i!",
    "storage.VolumeNodeResources": "1 count i!",
}


class _Field(NamedTuple):
    json_name: str  # "" for an inlined struct
    kind: str  # scalar code, message name, or "map"
    repeated: bool
    keep_zero: bool
    null_if_absent: bool = False
    map_key: str = ""
    map_value: str = ""


def _parse_table(text: dict[str, str]) -> dict[str, dict[int, _Field]]:
    table: dict[str, dict[int, _Field]] = {}
    for message, spec in text.items():
        fields: dict[int, _Field] = {}
        for entry in filter(str.strip, spec.split(";")):
            number, name, kind = entry.split()
            repeated, keep_zero, nullable = "*" in kind, "!" in kind, "~" in kind
            kind = kind.rstrip("*!~")
            name = "" if name == "^" else name
            if kind.startswith("{"):
                key, value = kind[1:-1].split(":", 1)
                fields[int(number)] = _Field(name, "map", False, False, nullable, key, value)
            else:
                fields[int(number)] = _Field(name, kind, repeated, keep_zero, nullable)
        table[message] = fields
    return table


_TABLE = _parse_table(_MESSAGES)


# --------------------------------------------------------------- wire format


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("protobuf: truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("protobuf: varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of a message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("protobuf: field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise ValueError("protobuf: truncated length-delimited field")
            value, pos = data[pos:pos + size], pos + size
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise ValueError("protobuf: truncated fixed64 field")
            value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise ValueError("protobuf: truncated fixed32 field")
            value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"protobuf: unsupported wire type {wire}")
        yield number, wire, value


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _scalar_values(kind: str, wire: int, value: int | bytes) -> list[Any]:
    """One wire value as a list of Python values (several if packed)."""
    if kind == "s":
        _expect(wire, _LENGTH, kind)
        assert isinstance(value, bytes)
        return [value.decode("utf-8")]
    if kind == "b":
        _expect(wire, _LENGTH, kind)
        assert isinstance(value, bytes)
        return [base64.b64encode(value).decode("ascii")]
    if kind == "f":
        if wire == _FIXED64:
            assert isinstance(value, int)
            return [struct.unpack("<d", value.to_bytes(8, "little"))[0]]
        _expect(wire, _LENGTH, kind)
        assert isinstance(value, bytes)
        return list(struct.unpack(f"<{len(value) // 8}d", value))
    # integers and bools: varint, or packed varints
    if wire == _VARINT:
        assert isinstance(value, int)
        numbers = [value]
    else:
        _expect(wire, _LENGTH, kind)
        assert isinstance(value, bytes)
        numbers, pos = [], 0
        while pos < len(value):
            n, pos = _varint(value, pos)
            numbers.append(n)
    if kind == "?":
        return [bool(n) for n in numbers]
    return [_signed(n) for n in numbers]


def _expect(wire: int, want: int, kind: str) -> None:
    if wire != want:
        raise ValueError(f"protobuf: wire type {wire} for a field of kind {kind!r}")


# ------------------------------------------------- types with their own JSON


def _plain(data: bytes) -> dict[int, int | bytes]:
    return {number: value for number, _, value in _fields(data)}


def _int(value: int | bytes | None) -> int:
    return _signed(value) if isinstance(value, int) else 0


def _utc(seconds: int, nanos: int) -> _dt.datetime:
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return epoch + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def _time(data: bytes) -> str | None:
    """meta/v1 Time: {1 seconds, 2 nanos}; RFC 3339 to the second, empty -> null."""
    if not data:
        return None
    f = _plain(data)
    return _utc(_int(f.get(1)), _int(f.get(2))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(data: bytes) -> str | None:
    """meta/v1 MicroTime: like Time but with six fractional digits."""
    if not data:
        return None
    f = _plain(data)
    return _utc(_int(f.get(1)), _int(f.get(2))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duration(data: bytes) -> str:
    """meta/v1 Duration: {1 nanoseconds}; JSON is Go's Duration.String()."""
    return go_duration(_int(_plain(data).get(1)))


def go_duration(ns: int) -> str:
    """Format nanoseconds the way Go's time.Duration.String does."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _frac(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _frac(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _frac(n: int, unit: int) -> str:
    whole, part = divmod(n, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{part:0{digits}d}".rstrip("0")


def _int_or_string(data: bytes) -> int | str:
    """util/intstr IntOrString: {1 type (0 int, 1 string), 2 intVal, 3 strVal}."""
    f = _plain(data)
    if _int(f.get(1)) == 1:
        raw = f.get(3, b"")
        return raw.decode("utf-8") if isinstance(raw, bytes) else ""
    return _int(f.get(2))


def _quantity(data: bytes) -> str:
    """api/resource Quantity: {1 string}, already in canonical form."""
    raw = _plain(data).get(1, b"")
    return raw.decode("utf-8") if isinstance(raw, bytes) else ""


def _raw_json(data: bytes) -> Any:
    """FieldsV1 / RawExtension: {1 raw}, raw being a JSON document."""
    raw = _plain(data).get(1)
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"protobuf: embedded raw object is not JSON: {exc}") from None


_SPECIAL: dict[str, Callable[[bytes], Any]] = {
    "meta.Time": _time,
    "meta.MicroTime": _micro_time,
    "meta.Duration": _duration,
    "meta.FieldsV1": _raw_json,
    "runtime.RawExtension": _raw_json,
    "intstr.IntOrString": _int_or_string,
    "resource.Quantity": _quantity,
}


# ------------------------------------------------------------------ decoding


def _value(kind: str, data: bytes, unknown: list[str]) -> Any:
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(data)
    return _message(kind, data, unknown)


def _map_entry(field: _Field, data: bytes, unknown: list[str]) -> tuple[str, Any]:
    key: Any = ""
    value: Any = None
    items: list[Any] = []
    for number, wire, raw in _fields(data):
        if number == 1:
            key = _scalar_values(field.map_key, wire, raw)[0]
        elif number == 2:
            if field.map_value.endswith("*"):  # a wrapper message around a list
                _expect(wire, _LENGTH, field.map_value)
                assert isinstance(raw, bytes)
                kind = field.map_value[:-1]
                for n, w, v in _fields(raw):
                    if n == 1:
                        items.extend(_scalar_values(kind, w, v))
                value = items
            elif field.map_value in _SCALARS:
                value = _scalar_values(field.map_value, wire, raw)[0]
            else:
                _expect(wire, _LENGTH, field.map_value)
                assert isinstance(raw, bytes)
                value = _value(field.map_value, raw, unknown)
    if value is None:  # an entry with the value left out holds the zero value
        value = {"s": "", "b": "", "i": 0, "f": 0.0, "?": False}.get(field.map_value)
        if value is None:
            value = [] if field.map_value.endswith("*") else _value(field.map_value, b"", unknown)
    return str(key), value


def _message(name: str, data: bytes, unknown: list[str]) -> dict[str, Any]:
    table = _TABLE.get(name)
    if table is None:
        raise ValueError(f"protobuf: no table for message {name}")
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        field = table.get(number)
        if field is None:
            unknown.append(f"{name}#{number}")
            continue
        if field.kind == "map":
            _expect(wire, _LENGTH, "map")
            assert isinstance(raw, bytes)
            key, value = _map_entry(field, raw, unknown)
            out.setdefault(field.json_name, {})[key] = value
        elif field.kind in _SCALARS:
            values = _scalar_values(field.kind, wire, raw)
            if field.repeated:
                out.setdefault(field.json_name, []).extend(values)
            elif not values[-1] and not field.keep_zero:  # Go's omitempty
                out.pop(field.json_name, None)
            else:
                out[field.json_name] = values[-1]
        else:
            _expect(wire, _LENGTH, field.kind)
            assert isinstance(raw, bytes)
            value = _value(field.kind, raw, unknown)
            if not field.json_name:  # embedded struct: its fields are ours
                out.update(value)
            elif field.repeated:
                out.setdefault(field.json_name, []).append(value)
            else:
                out[field.json_name] = value
    for field in table.values():  # Go writes nil without omitempty as null
        if field.null_if_absent and field.json_name not in out:
            out[field.json_name] = None
    return out


def decode_with_unknown(body: bytes) -> tuple[dict[str, Any], list[str]]:
    """Decode a protobuf body; also return the skipped ``Message#number``s."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf: body does not start with the k8s\\x00 magic")
    api_version = kind = encoding = ""
    raw: bytes | None = None
    for number, wire, value in _fields(body[len(MAGIC):]):
        if number == 1:
            _expect(wire, _LENGTH, "typeMeta")
            assert isinstance(value, bytes)
            for n, w, v in _fields(value):
                if n in (1, 2):
                    _expect(w, _LENGTH, "s")
                    assert isinstance(v, bytes)
                    if n == 1:
                        api_version = v.decode("utf-8")
                    else:
                        kind = v.decode("utf-8")
        elif number == 2:
            _expect(wire, _LENGTH, "raw")
            assert isinstance(value, bytes)
            raw = value
        elif number == 3 and isinstance(value, bytes):
            encoding = value.decode("utf-8")
    if encoding:
        raise ValueError(f"protobuf: unsupported contentEncoding {encoding!r}")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise ValueError(f"protobuf: cannot decode kind {kind!r} of apiVersion {api_version!r}")
    unknown: list[str] = []
    obj = _message(message, raw or b"", unknown)
    return {"apiVersion": api_version, "kind": kind, **obj}, unknown


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``application/vnd.kubernetes.protobuf`` body into a JSON-shaped dict.

    Raises ``ValueError`` on a bad magic, truncated or malformed data, or a
    kind this module has no table for.
    """
    return decode_with_unknown(body)[0]
