"""Datastores: named places that hold data — a local folder (the workspace's default), S3, Azure Blob, GCS.

    ds = ws.get_default_datastore()
    ds.upload(src_dir="./data/mnist", target_path="mnist", overwrite=True, show_progress=True)
    Datastore.register_s3(ws, "lake", bucket_name="b", endpoint_url="http://127.0.0.1:9000")   # credentials: env/profile
    est = Estimator(..., script_params={"--data-folder": ds.path("mnist").as_mount()})

Credentials come from the environment (the SDKs' own variables), a named profile, or the registration; a secret
given at registration is stored encrypted (``runyard.data.secrets``), and no message, repr or run record shows it.
"""
from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Any

from runyard import plugins, validation
from runyard.config.datapath import clean_path, data_env_var, input_name  # noqa: F401 - shared by every input kind
from runyard.data import secrets
from runyard.data.stores import Files, FsspecFiles, LocalFiles
from runyard.errors import ConfigError, DataError, NotFound, ValidationError

if TYPE_CHECKING:
    from runyard.data.transfer import TransferReport
    from runyard.store.metadata.entities import DatastoreRecord
    from runyard.workspace import Workspace

DEFAULT_NAME = "workspaceblobstore"  # the name Azure ML gives a workspace's default datastore
TYPES = {"local": "Local", "s3": "S3", "azure_blob": "AzureBlob", "gcs": "GCS"}
_SECRET_FIELDS = ("secret_access_key", "account_key", "sas_token", "token")


class Datastore:
    """A registered datastore. ``Datastore(ws, name)`` (or ``Datastore.get``) looks one up; the ``register_*``
    functions add one; ``ws.get_default_datastore()`` is the workspace's own folder ("workspaceblobstore")."""

    def __new__(cls, workspace: "Workspace", name: str | None = None) -> "Datastore":
        return cls.get(workspace, name) if name is not None else cls.get_default(workspace)

    @classmethod
    def _from_record(cls, workspace: "Workspace", record: "DatastoreRecord") -> "Datastore":
        self = object.__new__(cls)
        self.workspace = workspace
        self._record = record
        self._files: Files | None = None
        return self

    # -- lookup ---------------------------------------------------------------------------------------------
    @classmethod
    def get(cls, workspace: "Workspace", datastore_name: str) -> "Datastore":
        if datastore_name == DEFAULT_NAME:
            return cls._builtin(workspace)
        return cls._from_record(workspace, workspace.metadata.get_datastore(datastore_name))

    @classmethod
    def get_default(cls, workspace: "Workspace") -> "Datastore":
        """The default datastore: ``workspaceblobstore`` (the folder ``<workspace>/datastores/workspaceblobstore``)
        unless another was made the default."""
        builtin = cls._builtin(workspace)
        if builtin.is_default:
            return builtin
        return cls._from_record(workspace, workspace.metadata.get_datastore(None))

    @classmethod
    def _builtin(cls, workspace: "Workspace") -> "Datastore":
        """Every workspace has ``workspaceblobstore``: registered the first time any datastore is used."""
        try:
            return cls._from_record(workspace, workspace.metadata.get_datastore(DEFAULT_NAME))
        except NotFound:
            pass
        folder = workspace.path / "datastores" / DEFAULT_NAME
        folder.mkdir(parents=True, exist_ok=True)
        try:
            record = workspace.metadata.save_datastore(DEFAULT_NAME, "local", {"path": str(folder)})
        except ValidationError:  # registered by another process meanwhile
            record = workspace.metadata.get_datastore(DEFAULT_NAME)
        return cls._from_record(workspace, record)

    @classmethod
    def list(cls, workspace: "Workspace") -> list["Datastore"]:
        cls._builtin(workspace)
        return [cls._from_record(workspace, r) for r in workspace.metadata.list_datastores()]

    # -- registration ---------------------------------------------------------------------------------------
    @classmethod
    def register_local(cls, workspace: "Workspace", datastore_name: str, path: str | os.PathLike,
                       overwrite: bool = False, create_if_not_exists: bool = False) -> "Datastore":
        """A folder on this machine (or a shared file system every node mounts at the same path)."""
        folder = Path(path).expanduser().absolute()
        if create_if_not_exists:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotFound(f"cannot register datastore {datastore_name!r}: {folder} is not a folder "
                           "(pass create_if_not_exists=True to create it)")
        return cls._register(workspace, datastore_name, "local", {"path": str(folder)}, overwrite, False, False)

    @classmethod
    def register_s3(cls, workspace: "Workspace", datastore_name: str, bucket_name: str, *, path_prefix: str = "",
                    endpoint_url: str | None = None, region: str | None = None, access_key_id: str | None = None,
                    secret_access_key: str | None = None, profile: str | None = None, anonymous: bool = False,
                    overwrite: bool = False, create_if_not_exists: bool = False,
                    skip_validation: bool = False) -> "Datastore":
        """An S3 bucket (or an S3-compatible service at ``endpoint_url``). Credentials: ``access_key_id`` +
        ``secret_access_key`` (stored encrypted), a ``profile`` of ~/.aws, or, with neither, the environment
        (``AWS_ACCESS_KEY_ID`` …, ``AWS_PROFILE``), looked up each time the datastore is used."""
        if bool(access_key_id) != bool(secret_access_key):
            raise ValidationError("give both access_key_id and secret_access_key, or neither (credentials from the "
                                  "environment or a profile)")
        auth = "keys" if access_key_id else "profile" if profile else "anonymous" if anonymous else "environment"
        config = {"bucket": _bucket(bucket_name, "s3"), "prefix": clean_path(path_prefix, "path_prefix"),
                  "endpoint_url": endpoint_url, "region": region, "auth": auth, "profile": profile,
                  "access_key_id": access_key_id,
                  "secret_access_key": secrets.encrypt(workspace.path, secret_access_key) if secret_access_key else None}
        return cls._register(workspace, datastore_name, "s3", config, overwrite, create_if_not_exists, skip_validation)

    @classmethod
    def register_azure_blob_container(
        cls, workspace: "Workspace", datastore_name: str, container_name: str, account_name: str,
        sas_token: str | None = None, account_key: str | None = None, protocol: str | None = None,
        endpoint: str | None = None, overwrite: bool = False, create_if_not_exists: bool = False,
        skip_validation: bool = False, blob_endpoint: str | None = None, path_prefix: str = "",
    ) -> "Datastore":
        """An Azure Blob container. ``account_key`` or ``sas_token`` are stored encrypted; with neither, the
        environment (``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``).
        ``blob_endpoint``: a full service URL (e.g. the Azurite emulator's ``http://127.0.0.1:10000/devstoreaccount1``)."""
        if account_key and sas_token:
            raise ValidationError("give account_key or sas_token, not both")
        auth = "account_key" if account_key else "sas_token" if sas_token else "environment"
        scheme = urlsplit(blob_endpoint).scheme.lower() if blob_endpoint else None
        if blob_endpoint and scheme not in ("http", "https"):
            raise ValidationError(f"blob_endpoint {blob_endpoint!r} must be an http:// or https:// URL")
        if protocol and scheme and protocol.lower() != scheme:
            raise ValidationError(f"protocol={protocol!r} contradicts blob_endpoint {blob_endpoint!r}")
        config = {"container": _bucket(container_name, "azure_blob", "container_name"), "account_name": account_name,
                  "prefix": clean_path(path_prefix, "path_prefix"), "protocol": (protocol or scheme or "https").lower(),
                  "endpoint": endpoint or "core.windows.net", "blob_endpoint": blob_endpoint, "auth": auth,
                  "account_key": secrets.encrypt(workspace.path, account_key) if account_key else None,
                  "sas_token": secrets.encrypt(workspace.path, sas_token) if sas_token else None}
        return cls._register(workspace, datastore_name, "azure_blob", config, overwrite, create_if_not_exists,
                             skip_validation)

    @classmethod
    def register_gcs(cls, workspace: "Workspace", datastore_name: str, bucket_name: str, *, path_prefix: str = "",
                     project: str | None = None, credentials_file: str | None = None, endpoint_url: str | None = None,
                     anonymous: bool = False, overwrite: bool = False, create_if_not_exists: bool = False,
                     skip_validation: bool = False) -> "Datastore":
        """A Google Cloud Storage bucket; credentials: a service-account JSON file (referenced by path, not copied),
        or the environment (``GOOGLE_APPLICATION_CREDENTIALS``)."""
        auth = "file" if credentials_file else "anonymous" if anonymous else "environment"
        config = {"bucket": _bucket(bucket_name, "gcs"), "prefix": clean_path(path_prefix, "path_prefix"), "project": project,
                  "credentials_file": str(Path(credentials_file).absolute()) if credentials_file else None,
                  "endpoint_url": endpoint_url, "auth": auth}
        return cls._register(workspace, datastore_name, "gcs", config, overwrite, create_if_not_exists, skip_validation)

    @classmethod
    def _register(cls, workspace: "Workspace", name: str, type_: str, config: dict[str, Any], overwrite: bool,
                  create: bool, skip_validation: bool) -> "Datastore":
        name = validation.key(name, "datastore name")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise ValidationError(f"datastore name {name!r}: use letters, digits, '_', '-' and '.'")
        from runyard.store.metadata.entities import DatastoreRecord

        cls._builtin(workspace)  # registered first: the default until another is chosen
        probe = cls._from_record(workspace, DatastoreRecord(name, type_, config, False, 0.0))
        if create and type_ != "local":
            probe._create_container()
        if not skip_validation:
            probe.files.check()  # unreachable, refused, no such bucket: nothing is registered
        return cls._from_record(workspace, workspace.metadata.save_datastore(name, type_, config, overwrite=overwrite))

    def _create_container(self) -> None:
        files = self.files
        assert isinstance(files, FsspecFiles)
        bucket = files.base.split("/", 1)[0]
        with files._errors(f"create {bucket!r}"):
            if files.fs.exists(bucket):
                return
            region = self._record.config.get("region")
            if files.scheme == "s3":  # us-east-1 takes no location constraint (s3fs would send one)
                params: dict[str, Any] = {"Bucket": bucket}
                if region and region != "us-east-1":
                    params["CreateBucketConfiguration"] = {"LocationConstraint": region}
                files.fs.call_s3("create_bucket", **params)
                files.fs.invalidate_cache()
            else:
                files.fs.mkdir(bucket)

    # -- what it is -----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record.name

    @property
    def datastore_type(self) -> str:
        return TYPES[self._record.type]

    @property
    def is_default(self) -> bool:
        return self._record.is_default

    @property
    def container_name(self) -> str | None:
        return self._record.config.get("container") or self._record.config.get("bucket")

    bucket_name = container_name

    @property
    def account_name(self) -> str | None:
        return self._record.config.get("account_name")

    @property
    def endpoint(self) -> str | None:
        c = self._record.config
        return c.get("endpoint_url") or c.get("blob_endpoint") or c.get("endpoint")

    @property
    def credential_type(self) -> str:
        """Where the credentials come from: keys (stored encrypted), profile, environment, file, anonymous, none."""
        return self._record.config.get("auth", "none")

    def describe(self) -> dict[str, Any]:
        """What is registered, with every secret left out (``"***"`` where one is stored)."""
        out = {"name": self.name, "type": self.datastore_type, "default": self.is_default}
        for key, value in self._record.config.items():
            if value is None:
                continue
            out[key] = "***" if key in _SECRET_FIELDS else f"{value[:4]}***" if key == "access_key_id" else value
        return out

    def __repr__(self) -> str:
        where = self._record.config.get("path") or self.files_uri()
        return f"Datastore(name={self.name!r}, type={self.datastore_type!r}, at={where!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datastore) and other.name == self.name and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash(("datastore", self.name))

    def files_uri(self, path: str = "") -> str:
        c, t = self._record.config, self._record.type
        if t == "local":
            return str(Path(c["path"], path))
        scheme = {"s3": "s3", "azure_blob": "az", "gcs": "gs"}[t]
        base = "/".join(p for p in (c.get("bucket") or c.get("container"), c.get("prefix"), path) if p)
        return f"{scheme}://{base}"

    # -- the files ------------------------------------------------------------------------------------------
    @property
    def files(self) -> Files:
        if self._files is None:
            self._files = _open_files(self.workspace, self._record)
        return self._files

    def upload(self, src_dir: str | os.PathLike, target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> "DataReference":
        """Upload a folder's files under ``target_path``; files already there with the same size and content are
        skipped, other existing files are replaced only with ``overwrite=True``. Returns a reference to the folder."""
        src = Path(src_dir).expanduser().absolute() if src_dir is not None else None
        if src is None or not src.exists():
            raise NotFound(f"src_dir {os.fspath(src_dir) if src_dir is not None else None!r} does not exist")
        if not src.is_dir():
            raise ConfigError(f"src_dir {os.fspath(src_dir)!r} is a file — use upload_files([...]) for files")
        target = clean_path(target_path, "target_path")
        from runyard.data.stores import walk_files

        base = target + "/" if target else ""
        pairs = [(path, base + rel, st) for path, rel, st in walk_files(str(src))]
        self._upload(pairs, target, overwrite, show_progress)
        return self.path(target)

    def upload_files(self, files: Sequence[str | os.PathLike], relative_root: str | os.PathLike | None = None,
                     target_path: str | None = None, overwrite: bool = False,
                     show_progress: bool = True) -> "DataReference":
        """Upload files; each keeps its path relative to ``relative_root`` (default: its own folder) under
        ``target_path``."""
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        target = clean_path(target_path, "target_path")
        root = Path(relative_root).expanduser().absolute() if relative_root is not None else None
        pairs = []
        for f in files:
            path = Path(f).expanduser().absolute()
            if not path.is_file():
                raise NotFound(f"cannot upload {os.fspath(f)!r}: " + ("it is a folder (use upload(src_dir=...))"
                                                                       if path.is_dir() else "no such file"))
            if root is not None and root not in path.parents:
                raise ValidationError(f"{path} is not inside relative_root {root}")
            rel = path.relative_to(root).as_posix() if root is not None else path.name
            pairs.append((str(path), posixpath.join(target, rel) if target else rel))
        self._upload(pairs, target, overwrite, show_progress)
        return self.path(target)

    def _upload(self, pairs: list[tuple], prefix: str, overwrite: bool, show_progress: bool) -> "TransferReport":
        from runyard.data.hashing import hash_cache_for
        from runyard.data.transfer import upload

        report = upload(self.files, pairs, prefix, overwrite, hash_cache_for(self.workspace.path), show_progress)
        self.last_transfer = report
        if show_progress:
            _say(f"{self.name}: " + report.describe("uploaded"))
        return report

    def download(self, target_path: str | os.PathLike, prefix: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> int:
        """Download the files under ``prefix`` (all when None) into ``target_path``, keeping their paths; files
        already there are kept unless ``overwrite`` (then those with the same content are still skipped).
        Returns the number of files downloaded."""
        from runyard.data.hashing import hash_cache_for
        from runyard.data.transfer import download

        key = clean_path(prefix, "prefix")
        report = download(self.files, key, Path(target_path).expanduser(), overwrite,
                          hash_cache_for(self.workspace.path), show_progress)
        self.last_transfer = report
        if show_progress:
            _say(f"{self.name}: " + report.describe("downloaded"))
        return report.transferred

    def list_files(self, prefix: str | None = None) -> dict[str, int]:
        """Path → size of the files under ``prefix``."""
        return {k: r.size for k, r in sorted(self.files.list(clean_path(prefix, "prefix")).items())}

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> "DataReference":
        return DataReference(self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self) -> "DataReference":
        return self.path().as_mount()

    def as_download(self, path_on_compute: str | None = None) -> "DataReference":
        return self.path().as_download(path_on_compute)

    def set_as_default(self) -> None:
        self.workspace.metadata.set_default_datastore(self.name)

    def unregister(self) -> None:
        """Forget the registration; the files stay where they are."""
        self.workspace.metadata.delete_datastore(self.name)


class DataReference:
    """A folder or file in a datastore, passed to a run: ``ds.path("mnist").as_mount()`` in ``arguments`` or
    ``script_params``. At run time the reference becomes a path on the compute (``$RUNYARD_DATA_<name>``)."""

    def __init__(self, datastore: Datastore, data_reference_name: str | None = None, path_on_datastore: str | None = None,
                 mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False) -> None:
        self.datastore = datastore
        self.path_on_datastore = clean_path(path_on_datastore, "path_on_datastore")
        default = "_".join(p for p in (datastore.name, self.path_on_datastore) if p)
        self.data_reference_name = input_name(data_reference_name or default)
        if mode not in ("mount", "download"):
            raise ValidationError(f"data reference mode must be 'mount' or 'download', got {mode!r}")
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def _with(self, **changes: Any) -> "DataReference":
        values = {"data_reference_name": self.data_reference_name, "path_on_datastore": self.path_on_datastore,
                  "mode": self.mode, "path_on_compute": self.path_on_compute, "overwrite": self.overwrite, **changes}
        return DataReference(self.datastore, **values)

    def as_mount(self) -> "DataReference":
        return self._with(mode="mount")

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> "DataReference":
        return self._with(mode="download", path_on_compute=path_on_compute, overwrite=overwrite)

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> "DataReference":
        joined = "/".join(p for p in (self.path_on_datastore, clean_path(path)) if p)
        return DataReference(self.datastore, data_reference_name, joined, self.mode, self.path_on_compute)

    def to_input(self) -> dict[str, Any]:
        """What a run records and resolves at run time (names only, never credentials)."""
        return {"name": self.data_reference_name, "mode": self.mode, "datastore": self.datastore.name,
                "path": self.path_on_datastore, "path_on_compute": self.path_on_compute}

    def __str__(self) -> str:
        return "${" + data_env_var(self.data_reference_name) + "}"

    def __repr__(self) -> str:
        return (f"DataReference(datastore={self.datastore.name!r}, path={self.path_on_datastore!r}, "
                f"mode={self.mode!r}, name={self.data_reference_name!r})")


# What each store accepts as a bucket/container name (S3, Azure Blob and GCS refuse the rest when it is created).
_NAME_RULES = {
    "s3": (r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "3–63 lowercase letters, digits, '.' and '-'"),
    "azure_blob": (r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", "3–63 lowercase letters, digits and single '-'"),
    "gcs": (r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", "3–63 lowercase letters, digits, '-', '_' (up to 222 with '.')"),
}


def _bucket(name: str, kind: str, what: str = "bucket_name") -> str:
    pattern, rule = _NAME_RULES[kind]
    if not isinstance(name, str) or not re.fullmatch(pattern, name) or (kind == "gcs" and "." not in name
                                                                       and len(name) > 63):
        raise ValidationError(f"{what} {name!r} is not a valid name: {rule}, starting and ending with a letter or "
                              "digit")
    return name


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def _open_files(workspace: "Workspace", record: "DatastoreRecord") -> Files:
    from runyard.data.hashing import hash_cache_for

    c, name = record.config, record.name
    if record.type == "local":
        return LocalFiles(name, Path(c["path"]), hash_cache_for(workspace.path))

    def secret(field: str) -> str | None:
        token = c.get(field)
        return secrets.decrypt(workspace.path, token, f"datastore {name!r}") if token else None

    base = "/".join(p for p in (c.get("bucket") or c.get("container"), c.get("prefix")) if p)
    if record.type == "s3":
        s3fs = _import("s3fs", "s3", name)
        _import("boto3", "s3", name)
        options: dict[str, Any] = {"skip_instance_cache": True,
                                   "config_kwargs": {"connect_timeout": 5, "retries": {"max_attempts": 2}}}
        if c.get("endpoint_url"):
            options["endpoint_url"] = c["endpoint_url"]
        if c.get("region"):
            options["client_kwargs"] = {"region_name": c["region"]}
        key = secret("secret_access_key")
        if c["auth"] == "keys":
            options.update(key=c["access_key_id"], secret=key)
        elif c["auth"] == "profile":
            options["profile"] = c["profile"]
        elif c["auth"] == "anonymous":
            options["anon"] = True
        def boto3_client():
            import boto3
            from botocore.config import Config

            session = boto3.Session(profile_name=c["profile"]) if c["auth"] == "profile" else boto3.Session()
            extra = {"aws_access_key_id": c["access_key_id"], "aws_secret_access_key": key} if c["auth"] == "keys" else {}
            config = Config(connect_timeout=5, retries={"max_attempts": 2}, max_pool_connections=32,
                            **({"signature_version": botocore.UNSIGNED} if c["auth"] == "anonymous" else {}))
            return session.client("s3", endpoint_url=c.get("endpoint_url"), region_name=c.get("region"), config=config,
                                  **extra)

        import botocore

        return FsspecFiles(name, s3fs.S3FileSystem(**options), base, "s3", c.get("endpoint_url"), (key or "",),
                           functools.lru_cache(maxsize=1)(boto3_client))
    if record.type == "azure_blob":
        adlfs = _import("adlfs", "azure", name)
        key, sas = secret("account_key"), secret("sas_token")
        endpoint = c.get("blob_endpoint") or f"{c['protocol']}://{c['account_name']}.blob.{c['endpoint']}"
        if c["auth"] == "environment":
            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            key = key or os.environ.get("AZURE_STORAGE_KEY")
            sas = sas or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
            if not (conn or key or sas):
                raise DataError(f"datastore {name!r} (az://{base} at {endpoint}) has no credentials: set "
                                "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or register "
                                "it with account_key= or sas_token=")
        else:
            conn = None
        if conn is None:
            parts = [f"DefaultEndpointsProtocol={endpoint.split('://')[0]}", f"AccountName={c['account_name']}",
                     f"BlobEndpoint={endpoint}"]
            parts += [f"AccountKey={key}"] if key else [f"SharedAccessSignature={sas.lstrip('?')}"] if sas else []
            conn = ";".join(parts)
        fs = adlfs.AzureBlobFileSystem(connection_string=conn, skip_instance_cache=True, connection_timeout=5,
                                       retry_total=1)
        return FsspecFiles(name, fs, base, "az", endpoint, (key or "", sas or "", conn))
    if record.type == "gcs":
        # gcsfs.core's file system: the package's default one also asks a gRPC control plane for each bucket's
        # layout (hierarchical namespaces), which an emulator or a plain bucket does not need.
        gcsfs = _import("gcsfs.core", "gcs", name)
        options = {"project": c.get("project"), "skip_instance_cache": True}
        if c.get("endpoint_url"):
            options["endpoint_url"] = c["endpoint_url"]
        options["token"] = c["credentials_file"] if c["auth"] == "file" else "anon" if c["auth"] == "anonymous" else None
        try:
            fs = gcsfs.GCSFileSystem(**options)
        except Exception as exc:  # noqa: BLE001 - the file's content is never echoed (it holds a private key)
            where = (f"the credentials file {c['credentials_file']}" if c["auth"] == "file"
                     else "the environment's credentials (GOOGLE_APPLICATION_CREDENTIALS)")
            raise DataError(f"datastore {name!r} (gs://{base}): {where} could not be used "
                            f"({type(exc).__name__}): give a service-account or user credentials JSON file") from None
        return FsspecFiles(name, fs, base, "gs", c.get("endpoint_url"), ())
    raise ConfigError(f"datastore {name!r} has an unknown type {record.type!r}")


def _import(module: str, extra: str, name: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"datastore {name!r} needs the {module} package: pip install 'runyard[{extra}]'") from None


__all__ = ["DEFAULT_NAME", "DataReference", "Datastore", "clean_path", "data_env_var", "input_name"]


plugins.register(plugins.FEATURES, "Datastore", Datastore)  # Workspace.datastores, .get_default_datastore()
