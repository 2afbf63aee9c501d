import Fleet
import Foundation
import SSHTransport

/// `deploy-goreplay`: upload the goreplay binary to every selected host,
/// verify it, install it atomically, write the service definition from the
/// inventory, and restart only where something changed.
///
/// Nothing is ever half-installed: the binary is uploaded under a staging
/// name, copied by root into a root-owned file whose `sha256sum` is checked
/// before it is executed or moved into place with one `mv`; a failed or
/// interrupted upload, or a staging file changed meanwhile, leaves the old
/// binary running.
public struct DeployGoReplay: DescribedTask {
    public let invocation: TaskInvocation
    public let binary: ReplayBinarySource
    public var dryRunMode: DryRunMode { .readStateOnly }

    /// How long to wait for a goreplay process after (re)starting it.
    static let processWait = 20

    public init(invocation: TaskInvocation, binary: ReplayBinarySource) {
        self.invocation = invocation
        self.binary = binary
    }

    public func preflight(_ context: RunContext) throws(TaskRefusal) {
        let window = context.inventory.dataSync.window
        let now = context.time.now()
        if window.contains(now) && !context.force {
            throw TaskRefusal(
                task: invocation.name,
                reason:
                    "inside the data-sync window (\(window.describe(at: now))): GoReplay is off on purpose while staging databases are dropped",
                remedy:
                    "deploy after the window ends, or pass --force to install anyway (it will not start GoReplay on hosts whose marker says 'true')"
            )
        }
        guard context.inventory.replay != nil else {
            throw TaskRefusal(
                task: invocation.name, reason: "the \(context.inventory.name) inventory has no replay: block",
                remedy: "add replay settings (docs/inventory.md)")
        }
        do {
            _ = try binary.resolve()
        } catch {
            throw TaskRefusal(task: invocation.name, reason: error.reason, remedy: error.remedy)
        }
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        let manager = context.inventory.serviceManager(for: host)
        guard
            let definition = try? ReplayServiceDefinition.render(
                for: host, inventory: context.inventory, manager: manager),
            let replay = context.inventory.replay
        else { return ["# no replay settings for \(host.name)"] }
        guard let binary = try? binary.resolve() else { return ["# no goreplay binary"] }
        return [
            "upload \(binary.path) (sha256 \(binary.sha256.prefix(12))…) to \(replay.binaryPath) via a staging file",
            "write \(definition.path): \(([replay.binaryPath] + definition.arguments).map(shellQuote).joined(separator: " "))",
            "restart \(replay.service) if the binary or the definition changed",
        ]
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let inventory = host.inventory
        guard let replay = inventory.replay else { return .failed("no replay settings") }
        let binary: ReplayBinary
        do {
            binary = try self.binary.resolve()
        } catch {
            return .failed("\(error)")
        }
        let manager = inventory.serviceManager(for: host.host)
        let definition: ReplayServiceDefinition
        do {
            definition = try ReplayServiceDefinition.render(for: host.host, inventory: inventory, manager: manager)
        } catch {
            return .failed("\(error)")
        }
        let service: ServiceName
        do {
            service = try ServiceName(validating: replay.service)
        } catch {
            return .failed("\(error)")
        }
        let control = ServiceControl(manager: manager)
        let marker = inventory.dataSync.marker

        // 1. What is there now.
        let state = try await host.execute(
            Self.stateScript(
                binary: replay.binaryPath, definition: definition.path, marker: marker,
                status: control.statusCommand(service)),
            sudo: true, echo: false)
        guard state.succeeded else {
            return TaskOutcome(
                hostOutcome: state.outcome,
                message: "reading state failed: \(state.stderr.lastLine ?? "exit \(state.exitStatus)")")
        }
        let facts = KeyValueLines(state.stdout)
        let binaryCurrent = facts["binary"] == binary.sha256
        let definitionHash = Self.sha256Hex(definition.content)
        let definitionCurrent = facts["definition"] == definitionHash
        let wasRunning = facts["running"] == "yes"
        let syncInProgress = facts["marker"] == "true"

        var did: [String] = []
        if host.run.dryRun {
            var plan: [String] = []
            plan.append(
                binaryCurrent ? "binary up to date" : "would install binary (sha256 \(binary.sha256.prefix(12))…)")
            plan.append(definitionCurrent ? "definition up to date" : "would write \(definition.path)")
            if !binaryCurrent || !definitionCurrent || !wasRunning {
                plan.append(
                    syncInProgress ? "would not start: data-sync marker is 'true'" : "would (re)start \(service)")
            }
            return .ok("dry run: " + plan.joined(separator: "; "))
        }

        // 2. Binary: staging upload, verify on the host, one atomic mv. Staging files that interrupted
        // deploys left are removed whether or not this one uploads.
        let directory = (replay.binaryPath as NSString).deletingLastPathComponent
        let stagingDirectory = host.user == "root" ? directory : "/tmp"
        let prepare = try await host.execute(
            Self.stagingScript(directory: stagingDirectory, create: host.user == "root", makeStaging: !binaryCurrent),
            echo: false)
        let prepared = KeyValueLines(prepare.stdout)
        if let removed = prepared["removed"].flatMap(Int.init), removed > 0 {
            host.notice("removed \(removed) staging file\(removed == 1 ? "" : "s") left by interrupted deploys")
        }
        if !binaryCurrent {
            guard prepare.succeeded, let staging = prepared["staging"], staging.hasPrefix(stagingDirectory + "/") else {
                return .failed(
                    "cannot create a staging file in \(stagingDirectory): \(prepare.stderr.lastLine ?? "exit \(prepare.exitStatus)")"
                )
            }
            do {
                try await host.upload(file: binary.path, to: staging, mode: 0o755)
            } catch {
                _ = try? await host.execute("rm -f \(shellQuote(staging))", echo: false)
                // A connection failure stays one; anything else (disk full, permission) is this task's
                // failure with its cause, not a made-up exit status.
                if let ssh = error as? SSHError, ssh.kind.isConnectivity { throw error }
                if error is CancellationError { throw error }
                return .failed("uploading the binary failed (old one kept): \(error)")
            }
            let install = try await host.execute(
                Self.installScript(staging: staging, final: replay.binaryPath, sha256: binary.sha256),
                sudo: true, echo: false)
            guard install.succeeded else {
                // Only the script's own `installed=yes` says the rename happened; without it the old
                // binary is still in place (the script removed its copy).
                let installed = KeyValueLines(install.stdout)["installed"] == "yes"
                let why = install.stderr.lastLine ?? "exit \(install.exitStatus)"
                return TaskOutcome(
                    hostOutcome: install.outcome,
                    message: installed
                        ? "the new binary was installed at \(replay.binaryPath) but its final check failed: \(why)"
                        : "binary not installed: \(why)")
            }
            did.append("binary installed (sha256 \(binary.sha256.prefix(12))…)")
        }

        // 3. Service definition, written atomically.
        if !definitionCurrent {
            let write = try await host.execute(
                AtomicFile.writeScript(path: definition.path, content: definition.content, mode: definition.mode)
                    + (definition.afterChange.map { " && " + $0 } ?? ""),
                sudo: true, echo: false)
            guard write.succeeded else {
                return TaskOutcome(
                    hostOutcome: write.outcome,
                    message: "writing \(definition.path) failed: \(write.stderr.lastLine ?? "")")
            }
            did.append("\(definition.path) written")
        }

        // 4. Restart only where something changed; never start during a data sync.
        let changed = !binaryCurrent || !definitionCurrent
        if syncInProgress {
            if changed { did.append("not started: data-sync marker is 'true'") }
            return .ok(
                did.isEmpty ? "up to date; data sync in progress, not running" : did.joined(separator: "; "),
                changed: changed)
        }
        if changed || !wasRunning {
            let action: ServiceAction = wasRunning ? .restart : .start
            let result = try await host.execute(control.command(action, service), sudo: true, echo: false)
            guard result.succeeded else {
                return TaskOutcome(
                    hostOutcome: result.outcome,
                    message: (did + [
                        "\(action.rawValue) \(service) failed: \(result.stderr.lastLine ?? result.stdout.lastLine ?? "")"
                    ]).joined(separator: "; "))
            }
            let wait = try await host.execute(Self.waitForProcess(seconds: Self.processWait), echo: false)
            let count = Int(wait.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            guard count > 0 else {
                return .failed(
                    (did + [
                        "\(service) \(action.rawValue)ed but no goreplay process after \(Self.processWait)s; see the service log"
                    ]).joined(separator: "; "))
            }
            did.append("\(service) \(wasRunning ? "restarted" : "started"); \(count) process\(count == 1 ? "" : "es")")
            return .ok(did.joined(separator: "; "), changed: true)
        }
        return .ok("up to date, nothing to do")
    }

    /// Names of staging files, the SFTP upload's own temporary files and install copies, all of which an
    /// interrupted deploy can leave behind.
    static let stagingPattern = ".goreplay.govuk-fab*"

    /// Removes this user's staging files left by interrupted deploys (older than 10 minutes, so a
    /// concurrent deploy's are never touched), then makes a fresh one with `mktemp` (unpredictable name,
    /// created 0600 by the login user). Prints `removed=N` and `staging=PATH`.
    static func stagingScript(directory: String, create: Bool, makeStaging: Bool) -> String {
        """
        d=\(shellQuote(directory))
        \(create ? "mkdir -p \"$d\" || exit 1" : "")
        n=$(find "$d" -maxdepth 1 -type f -user "$(id -u)" \\( -name '\(stagingPattern)' -o -name '.\(stagingPattern)' \\) \
          -mmin +10 -print -delete 2>/dev/null | wc -l)
        echo "removed=$n"
        \(makeStaging ? "s=$(mktemp \"$d/.goreplay.govuk-fab.XXXXXXXXXX\") || exit 1; echo \"staging=$s\"" : "")
        """
    }

    static func stateScript(binary: String, definition: String, marker: String, status: String) -> String {
        """
        b=\(shellQuote(binary)); d=\(shellQuote(definition)); m=\(shellQuote(marker))
        if [ -f "$b" ]; then echo "binary=$(sha256sum < "$b" | cut -d' ' -f1)"; else echo binary=none; fi
        if [ -f "$d" ]; then echo "definition=$(sha256sum < "$d" | cut -d' ' -f1)"; else echo definition=none; fi
        if [ -f "$m" ]; then echo "marker=$(head -c 64 "$m" | tr -d '\\n')"; else echo marker_missing=1; fi
        if ( \(status) ) >/dev/null 2>&1; then echo running=yes; else echo running=no; fi
        """
    }

    /// Installs the upload as root without trusting the login user's staging file after reading it
    /// once: copies it into a fresh root-owned file next to the binary (`mktemp`: 0600, unpredictable
    /// name), verifies the SHA-256 of that copy, and only then executes it (`--help`: a binary built
    /// against a Swift runtime the host lacks fails here, not after the restart) and renames it over
    /// the binary, on the binary's own filesystem. The running process keeps the old inode, so a live
    /// goreplay is never disturbed until restart. Prints `installed=yes` once the rename is done:
    /// every failure before it leaves the old binary in place and says so.
    static func installScript(staging: String, final: String, sha256: String) -> String {
        """
        s=\(shellQuote(staging)); f=\(shellQuote(final)); want=\(sha256); d=$(dirname "$f")
        kept() { echo "$1; nothing was run, the old binary is kept" >&2; exit 1; }
        mkdir -p "$d" || { rm -f "$s"; kept "cannot create $d"; }
        find "$d" -maxdepth 1 -type f -name "$(basename "$f").govuk-fab-new.*" -mmin +10 -delete 2>/dev/null
        n=$(mktemp "$f.govuk-fab-new.XXXXXXXXXX") || { rm -f "$s"; kept "cannot create a file in $d"; }
        cp "$s" "$n"; r=$?; rm -f "$s"
        [ $r -eq 0 ] || { rm -f "$n"; kept "copying the upload to $d failed"; }
        got=$(sha256sum < "$n" | cut -d' ' -f1)
        [ "$got" = "$want" ] || { rm -f "$n"; kept "sha256 mismatch on host: $got, expected $want"; }
        chmod 0755 "$n" || { rm -f "$n"; kept "chmod failed"; }
        if ! e=$("$n" --help 2>&1 >/dev/null); then
          rm -f "$n"; echo "the new binary does not run on this host: $(printf '%s\\n' "$e" | tail -n 1) (build it with make goreplay-static); the old binary is kept" >&2; exit 1
        fi
        mv -f "$n" "$f" || { rm -f "$n"; kept "moving it to $f failed"; }
        echo installed=yes
        got=$(sha256sum < "$f" | cut -d' ' -f1)
        [ "$got" = "$want" ] || { echo "the new binary is in place at $f, but it now has sha256 $got, expected $want: something changed it after the move" >&2; exit 1; }
        """
    }

    /// Polls until a goreplay process runs (bounded), printing the count.
    static func waitForProcess(seconds: Int) -> String {
        "i=0; while [ $i -lt \(seconds * 5) ]; do n=$(pgrep -x goreplay | wc -l); [ \"$n\" -gt 0 ] && break; sleep 0.2; i=$((i+1)); done; pgrep -x goreplay | wc -l"
    }

    static func sha256Hex(_ text: String) -> String {
        SHA256Hex.of(Array(text.utf8))
    }
}

/// `goreplay.config`: shows the service definition deploy-goreplay would
/// write on each host; read-only, connects to nothing (everything it shows
/// comes from the inventory).
public struct ShowReplayConfig: DescribedTask {
    public let invocation: TaskInvocation

    public init(invocation: TaskInvocation) { self.invocation = invocation }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] { [] }

    /// Always known without connecting: the rendered definition, as one multi-line message.
    public func outcomeWithoutConnecting(on host: FleetHost, context: RunContext) -> TaskOutcome? {
        let manager = context.inventory.serviceManager(for: host)
        do {
            let definition = try ReplayServiceDefinition.render(
                for: host, inventory: context.inventory, manager: manager)
            let content =
                definition.content.hasSuffix("\n") ? String(definition.content.dropLast()) : definition.content
            let lines = content.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
            return .ok((["\(definition.path) (\(manager)):"] + lines).joined(separator: "\n"))
        } catch {
            return .failed("\(error)")
        }
    }

    /// Not reached: the runner takes `outcomeWithoutConnecting`'s answer before connecting.
    public func run(on host: HostContext) async throws -> TaskOutcome {
        outcomeWithoutConnecting(on: host.host, context: RunContext(inventory: host.inventory))
            ?? .failed("no service definition")
    }
}
