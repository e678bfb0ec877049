"""A minimal CRI v1 client (k8s.io/cri-api runtime/v1/api.proto, service
runtime.v1.RuntimeService) for tests: only the messages and fields the
shim tests use, declared here with the public field numbers and turned
into protobuf classes at run time (python3-protobuf), spoken over gRPC
(python3-grpcio). No generated code, no protoc."""
import grpc
from google.protobuf import descriptor_pb2, message_factory

F = descriptor_pb2.FieldDescriptorProto
STR, BYTES, BOOL, I32, I64, U32, MSG, ENUM = (F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_BOOL,
                                            F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32,
                                            F.TYPE_MESSAGE, F.TYPE_ENUM)
REP = "rep"
MAP = "map"

# message: [(field, number, type, type name or None, REP|MAP|None)]
MESSAGES = {
    "VersionRequest": [("version", 1, STR, None, None)],
    "VersionResponse": [("version", 1, STR, None, None), ("runtime_name", 2, STR, None, None),
                        ("runtime_version", 3, STR, None, None),
                        ("runtime_api_version", 4, STR, None, None)],
    "PodSandboxMetadata": [("name", 1, STR, None, None), ("uid", 2, STR, None, None),
                           ("namespace", 3, STR, None, None), ("attempt", 4, U32, None, None)],
    "NamespaceOption": [("network", 1, I32, None, None), ("pid", 2, I32, None, None),
                        ("ipc", 3, I32, None, None)],
    "LinuxSandboxSecurityContext": [("namespace_options", 1, MSG, "NamespaceOption", None)],
    "LinuxPodSandboxConfig": [("cgroup_parent", 1, STR, None, None),
                              ("security_context", 2, MSG, "LinuxSandboxSecurityContext", None)],
    "DNSConfig": [("servers", 1, STR, None, REP), ("searches", 2, STR, None, REP),
                  ("options", 3, STR, None, REP)],
    "PortMapping": [("protocol", 1, I32, None, None), ("container_port", 2, I32, None, None),
                    ("host_port", 3, I32, None, None), ("host_ip", 4, STR, None, None)],
    "PodSandboxConfig": [("metadata", 1, MSG, "PodSandboxMetadata", None),
                         ("hostname", 2, STR, None, None), ("log_directory", 3, STR, None, None),
                         ("dns_config", 4, MSG, "DNSConfig", None),
                         ("port_mappings", 5, MSG, "PortMapping", REP),
                         ("labels", 6, STR, None, MAP), ("annotations", 7, STR, None, MAP),
                         ("linux", 8, MSG, "LinuxPodSandboxConfig", None)],
    "RunPodSandboxRequest": [("config", 1, MSG, "PodSandboxConfig", None),
                             ("runtime_handler", 2, STR, None, None)],
    "RunPodSandboxResponse": [("pod_sandbox_id", 1, STR, None, None)],
    "StopPodSandboxRequest": [("pod_sandbox_id", 1, STR, None, None)],
    "StopPodSandboxResponse": [],
    "RemovePodSandboxRequest": [("pod_sandbox_id", 1, STR, None, None)],
    "RemovePodSandboxResponse": [],
    "PodSandboxStatusRequest": [("pod_sandbox_id", 1, STR, None, None), ("verbose", 2, BOOL, None, None)],
    "PodIP": [("ip", 1, STR, None, None)],
    "PodSandboxNetworkStatus": [("ip", 1, STR, None, None),
                                ("additional_ips", 2, MSG, "PodIP", REP)],
    "PodSandboxStatus": [("id", 1, STR, None, None), ("state", 3, I32, None, None),
                         ("network", 5, MSG, "PodSandboxNetworkStatus", None)],
    "PodSandboxStatusResponse": [("status", 1, MSG, "PodSandboxStatus", None)],
    "ContainerMetadata": [("name", 1, STR, None, None), ("attempt", 2, U32, None, None)],
    "ImageSpec": [("image", 1, STR, None, None)],
    "KeyValue": [("key", 1, STR, None, None), ("value", 2, STR, None, None)],
    "Mount": [("container_path", 1, STR, None, None), ("host_path", 2, STR, None, None),
              ("readonly", 3, BOOL, None, None)],
    "ContainerConfig": [("metadata", 1, MSG, "ContainerMetadata", None),
                        ("image", 2, MSG, "ImageSpec", None), ("command", 3, STR, None, REP),
                        ("args", 4, STR, None, REP), ("working_dir", 5, STR, None, None),
                        ("envs", 6, MSG, "KeyValue", REP), ("mounts", 7, MSG, "Mount", REP),
                        ("labels", 9, STR, None, MAP),
                        ("annotations", 10, STR, None, MAP), ("log_path", 11, STR, None, None),
                        ("stdin", 12, BOOL, None, None), ("tty", 14, BOOL, None, None),
                        ("linux", 15, MSG, "LinuxContainerConfig", None)],
    "LinuxContainerResources": [("cpu_period", 1, I64, None, None),
                                ("cpu_quota", 2, I64, None, None),
                                ("cpu_shares", 3, I64, None, None),
                                ("memory_limit_in_bytes", 4, I64, None, None)],
    "LinuxContainerConfig": [("resources", 1, MSG, "LinuxContainerResources", None)],
    "CreateContainerRequest": [("pod_sandbox_id", 1, STR, None, None),
                               ("config", 2, MSG, "ContainerConfig", None),
                               ("sandbox_config", 3, MSG, "PodSandboxConfig", None)],
    "CreateContainerResponse": [("container_id", 1, STR, None, None)],
    "StartContainerRequest": [("container_id", 1, STR, None, None)],
    "StartContainerResponse": [],
    "StopContainerRequest": [("container_id", 1, STR, None, None), ("timeout", 2, I64, None, None)],
    "StopContainerResponse": [],
    "RemoveContainerRequest": [("container_id", 1, STR, None, None)],
    "RemoveContainerResponse": [],
    "ContainerStatusRequest": [("container_id", 1, STR, None, None), ("verbose", 2, BOOL, None, None)],
    "ContainerStatus": [("id", 1, STR, None, None), ("state", 3, I32, None, None),
                        ("exit_code", 7, I32, None, None), ("reason", 10, STR, None, None),
                        ("message", 11, STR, None, None), ("log_path", 15, STR, None, None)],
    "ContainerStatusResponse": [("status", 1, MSG, "ContainerStatus", None),
                                ("info", 2, STR, None, MAP)],
    "ExecSyncRequest": [("container_id", 1, STR, None, None), ("cmd", 2, STR, None, REP),
                        ("timeout", 3, I64, None, None)],
    "PullImageRequest": [("image", 1, MSG, "ImageSpec", None),
                         ("sandbox_config", 3, MSG, "PodSandboxConfig", None)],
    "PullImageResponse": [("image_ref", 1, STR, None, None)],
    "ExecSyncResponse": [("stdout", 1, BYTES, None, None), ("stderr", 2, BYTES, None, None),
                         ("exit_code", 3, I32, None, None)],
}

# Enum values used (runtime.v1): NamespaceMode NODE = 2; ContainerState
# CONTAINER_RUNNING = 1, CONTAINER_EXITED = 2; PodSandboxState SANDBOX_READY = 0.
POD = 0
NODE = 2
CONTAINER_RUNNING = 1
CONTAINER_EXITED = 2
SANDBOX_READY = 0
SANDBOX_NOTREADY = 1

PACKAGE = "runtime.v1"


def _build():
    fp = descriptor_pb2.FileDescriptorProto(name="sealpod_cri_subset.proto", package=PACKAGE,
                                            syntax="proto3")
    for name, fields in MESSAGES.items():
        m = fp.message_type.add(name=name)
        for fname, num, ftype, tname, kind in fields:
            f = m.field.add(name=fname, number=num, type=ftype)
            f.label = F.LABEL_REPEATED if kind in (REP, MAP) else F.LABEL_OPTIONAL
            if kind == MAP:
                entry = "".join(p.capitalize() for p in fname.split("_")) + "Entry"
                e = m.nested_type.add(name=entry)
                e.options.map_entry = True
                e.field.add(name="key", number=1, type=STR, label=F.LABEL_OPTIONAL)
                e.field.add(name="value", number=2, type=STR, label=F.LABEL_OPTIONAL)
                f.type = MSG
                f.type_name = ".%s.%s.%s" % (PACKAGE, name, entry)
            elif tname:
                f.type_name = ".%s.%s" % (PACKAGE, tname)
    return message_factory.GetMessages([fp])


_CLASSES = _build()


def msg(_type, **kw):
    return _CLASSES[PACKAGE + "." + _type](**kw)


def host_pod_config(name, logdir, annotations=None, hostname=None, namespace="default"):
    """A PodSandboxConfig for a host-network pod, as kubelet sends one (a
    fresh uid each time)."""
    import uuid
    return msg("PodSandboxConfig",
               metadata=msg("PodSandboxMetadata", name=name, namespace=namespace,
                            uid=str(uuid.uuid4()), attempt=0),
               hostname=name if hostname is None else hostname, log_directory=logdir,
               annotations=annotations or {},
               linux=msg("LinuxPodSandboxConfig", security_context=msg(
                   "LinuxSandboxSecurityContext",
                   namespace_options=msg("NamespaceOption", network=NODE))))


def remove_pod_quietly(rs, sid):
    """Stops and removes a pod in a test's cleanup path, ignoring errors."""
    try:
        rs.stop_pod_sandbox(sid)
        rs.remove_pod_sandbox(sid)
    except Exception:  # noqa: BLE001 - cleanup after a failure already raised
        pass


class RuntimeService:
    def __init__(self, address):
        target = address if address.startswith("unix:") else "unix://" + address
        self.channel = grpc.insecure_channel(target)

    def call(self, method, req, resp_name, timeout=300):
        fn = self.channel.unary_unary(
            "/runtime.v1.RuntimeService/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=_CLASSES[PACKAGE + "." + resp_name].FromString)
        return fn(req, timeout=timeout)

    def version(self):
        return self.call("Version", msg("VersionRequest", version="v1"), "VersionResponse")

    def run_pod_sandbox(self, config, handler):
        return self.call("RunPodSandbox", msg("RunPodSandboxRequest", config=config,
                                              runtime_handler=handler),
                         "RunPodSandboxResponse").pod_sandbox_id

    def stop_pod_sandbox(self, sid):
        self.call("StopPodSandbox", msg("StopPodSandboxRequest", pod_sandbox_id=sid),
                  "StopPodSandboxResponse")

    def remove_pod_sandbox(self, sid):
        self.call("RemovePodSandbox", msg("RemovePodSandboxRequest", pod_sandbox_id=sid),
                  "RemovePodSandboxResponse")

    def pod_sandbox_status(self, sid):
        return self.call("PodSandboxStatus", msg("PodSandboxStatusRequest", pod_sandbox_id=sid),
                         "PodSandboxStatusResponse").status

    def create_container(self, sid, config, sandbox_config):
        return self.call("CreateContainer", msg("CreateContainerRequest", pod_sandbox_id=sid,
                                                config=config, sandbox_config=sandbox_config),
                         "CreateContainerResponse").container_id

    def start_container(self, cid):
        self.call("StartContainer", msg("StartContainerRequest", container_id=cid),
                  "StartContainerResponse")

    def stop_container(self, cid, timeout=0):
        self.call("StopContainer", msg("StopContainerRequest", container_id=cid, timeout=timeout),
                  "StopContainerResponse")

    def remove_container(self, cid):
        self.call("RemoveContainer", msg("RemoveContainerRequest", container_id=cid),
                  "RemoveContainerResponse")

    def container_status(self, cid):
        return self.call("ContainerStatus", msg("ContainerStatusRequest", container_id=cid),
                         "ContainerStatusResponse").status

    def container_status_verbose(self, cid):
        """The whole response: status and the runtime's `info` map (crictl
        inspect's view: containerd puts the container's config there)."""
        return self.call("ContainerStatus", msg("ContainerStatusRequest", container_id=cid,
                                                verbose=True), "ContainerStatusResponse")

    def exec_sync(self, cid, cmd, timeout=60):
        return self.call("ExecSync", msg("ExecSyncRequest", container_id=cid, cmd=cmd,
                                         timeout=timeout), "ExecSyncResponse",
                         timeout=timeout + 30)

    def close(self):
        self.channel.close()


class ImageService:
    """runtime.v1.ImageService: PullImage only."""

    def __init__(self, address):
        target = address if address.startswith("unix:") else "unix://" + address
        self.channel = grpc.insecure_channel(target)

    def pull_image(self, image, timeout=300):
        fn = self.channel.unary_unary(
            "/runtime.v1.ImageService/PullImage",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=_CLASSES[PACKAGE + ".PullImageResponse"].FromString)
        return fn(msg("PullImageRequest", image=msg("ImageSpec", image=image)),
                  timeout=timeout).image_ref

    def close(self):
        self.channel.close()
