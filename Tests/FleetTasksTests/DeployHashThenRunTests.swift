import Fleet
import Foundation
import TestFleet
import Testing

@testable import FleetTasks

/// deploy-goreplay uploads as the login user (into /tmp when that is not root), then installs as
/// root. Someone with the login user's rights can rewrite the staging file at any moment; root must
/// check the bytes it is about to execute, not bytes it read earlier (issue #15).
@Suite(
    "deploy-goreplay hashes what root runs", .serialized,
    .enabled(if: TestFleet.isSupported, "needs root, sshd, unshare"))
struct DeployHashThenRunTests {
    @Test("a staging file rewritten during the install is never run, the old binary stays, and the message says so")
    func stagingRewrittenDuringInstall() async throws {
        var options = TestFleetOptions(hostCount: 1, namePrefix: "hash")
        options.privatePaths += [TestFleetHostStubs.binDirectory]
        let fleet = try TestFleet.start(options)
        defer { fleet.stop() }
        let host = try #require(fleet.hosts.first)
        let tag = "govuk-fab-hash-test-\(UUID().uuidString)"

        // The binary in place before the deploy, and the genuine new one (both tiny shell scripts).
        let binDirectory = host.realPath("/opt/goreplay/bin")
        try FileManager.default.createDirectory(atPath: binDirectory, withIntermediateDirectories: true)
        let oldBinary = "#!/bin/sh\necho old goreplay\n"
        try oldBinary.write(toFile: binDirectory + "/goreplay", atomically: true, encoding: .utf8)
        chmod(binDirectory + "/goreplay", 0o755)
        let newBinary = fleet.workDirectory + "/goreplay-new"
        try "#!/bin/sh\n# \(tag)\nexit 0\n".write(toFile: newBinary, atomically: true, encoding: .utf8)
        chmod(newBinary, 0o755)
        let pwned = host.realPath("/opt/goreplay/PWNED")

        // The attacker: whenever root hashes or copies anything, the login user's staging file of this
        // test (it carries the tag) is rewritten, after sha256sum has read it and before cp reads it.
        let evil = "#!/bin/sh\\nid -un > /opt/goreplay/PWNED\\nexit 0\\n"
        let rewrite = """
            for f in /tmp/.goreplay.govuk-fab.*; do
              [ -f "$f" ] && grep -q '\(tag)' "$f" 2>/dev/null && printf '\(evil)' > "$f"
            done
            """
        let stubs = try TestFleetHostStubs.install(["sha256sum", "cp"], on: fleet)
        try stubs.setScript(on: host.name, "sha256sum", "/usr/bin/sha256sum \"$@\"; r=$?\n\(rewrite)\nexit $r\n")
        try stubs.setScript(on: host.name, "cp", "\(rewrite)\nexec /bin/cp \"$@\"\n")

        let (inventory, context, task) = Self.deployment(of: newBinary, to: host, in: fleet)
        try task.preflight(context)
        let runner = FleetRunner(
            context: context, options: RunnerOptions(parallelism: 1, client: .from(inventory)), emit: { _ in })
        let report = await runner.run([PlannedTask(task: task, hosts: inventory.hosts)])
        let outcome = try #require(report.outcomes.first?.outcome)
        let message = outcome.message ?? ""

        // The hook really fired inside the install (else this test proves nothing).
        let calls = try stubs.calls(on: host.name)
        #expect(calls.contains { $0.user == "root" && $0.command == "cp" }, "\(calls)")

        #expect(
            !FileManager.default.fileExists(atPath: pwned),
            "the rewritten staging file ran as \((try? String(contentsOfFile: pwned, encoding: .utf8)) ?? "?")")
        #expect(outcome.hostOutcome.isFailure, "\(message)")
        #expect(
            try String(contentsOfFile: binDirectory + "/goreplay", encoding: .utf8) == oldBinary,
            "the binary in place changed; deploy said: \(message)")
        #expect(
            message.contains("sha256 mismatch") && message.contains("nothing was run, the old binary is kept"),
            "\(message)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: binDirectory).filter { $0 != "goreplay" }
        #expect(leftovers.isEmpty, "root's copies left behind: \(leftovers)")
        let staging = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { name in
            name.hasPrefix(".goreplay.govuk-fab.")
                && ((try? String(contentsOfFile: "/tmp/" + name, encoding: .utf8))?.contains(tag) ?? false)
        }
        #expect(staging.isEmpty, "staging files left in /tmp: \(staging)")
    }

    @Test("an untouched upload is installed through root's verified copy, leaving nothing behind")
    func genuineUploadInstalls() async throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "hashok"))
        defer { fleet.stop() }
        let host = try #require(fleet.hosts.first)
        let binDirectory = host.realPath("/opt/goreplay/bin")
        try FileManager.default.createDirectory(atPath: binDirectory, withIntermediateDirectories: true)
        try "#!/bin/sh\necho old goreplay\n".write(
            toFile: binDirectory + "/goreplay", atomically: true, encoding: .utf8)
        chmod(binDirectory + "/goreplay", 0o755)
        let newBinary = fleet.workDirectory + "/goreplay-new"
        let newContent = "#!/bin/sh\n# genuine \(UUID().uuidString)\nexit 0\n"
        try newContent.write(toFile: newBinary, atomically: true, encoding: .utf8)
        // A data sync in progress: the deploy installs but does not start the service.
        let marker = host.realPath(DataSyncSettings.defaultMarker)
        try FileManager.default.createDirectory(
            atPath: (marker as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "true".write(toFile: marker, atomically: true, encoding: .utf8)

        let (inventory, context, task) = Self.deployment(of: newBinary, to: host, in: fleet)
        let runner = FleetRunner(
            context: context, options: RunnerOptions(parallelism: 1, client: .from(inventory)), emit: { _ in })
        let report = await runner.run([PlannedTask(task: task, hosts: inventory.hosts)])
        let outcome = try #require(report.outcomes.first?.outcome)
        #expect(outcome.hostOutcome == .exited(status: 0), "\(outcome)")
        #expect(outcome.message?.contains("binary installed") == true, "\(outcome)")
        #expect(try String(contentsOfFile: binDirectory + "/goreplay", encoding: .utf8) == newContent)
        let attributes = try FileManager.default.attributesOfItem(atPath: binDirectory + "/goreplay")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o755)
        #expect((attributes[.ownerAccountID] as? NSNumber)?.intValue == 0, "installed binary not root-owned")
        #expect(try FileManager.default.contentsOfDirectory(atPath: binDirectory) == ["goreplay"])
    }

    /// One fleet host as a goreplay host of a minimal inventory, and a deploy of `binary` to it.
    static func deployment(of binary: String, to host: TestFleetHost, in fleet: TestFleet)
        -> (Inventory, RunContext, DeployGoReplay)
    {
        let inventory = Inventory(
            name: "testfleet",
            ssh: SSHSettings(
                user: fleet.user, port: host.port, identityFiles: [fleet.clientKeyPath],
                knownHosts: [fleet.knownHostsPath], connectTimeout: .seconds(30), commandTimeout: .seconds(60)),
            services: ServiceSettings(manager: .supervisor),
            replay: ReplaySettings(
                binaryPath: "/opt/goreplay/bin/goreplay",
                arguments: ["gor": ReplayArguments(capture: ":7999", targets: ["http://127.0.0.1:1"])]),
            hosts: [FleetHost(name: host.name, address: host.address, port: host.port, puppetClasses: ["gor"])])
        let task = DeployGoReplay(
            invocation: TaskInvocation(name: "deploy-goreplay", raw: "deploy-goreplay"),
            binary: ReplayBinarySource(explicit: binary))
        return (inventory, RunContext(inventory: inventory, time: WindowTests.noon), task)
    }

    @Test("the messages promise only what happened: a failure after the rename says the new binary is in place")
    func messagesAreTruthful() {
        let script = DeployGoReplay.installScript(staging: "/tmp/s", final: "/opt/goreplay/bin/goreplay", sha256: "ab")
        // Every failure before `mv` says the old binary is kept; the only one after it says the new one is in place.
        let beforeMove = script.components(separatedBy: "mv -f \"$n\" \"$f\"")[0]
        let afterMove = script.components(separatedBy: "echo installed=yes")[1]
        #expect(!beforeMove.contains("the new binary is in place"))
        #expect(afterMove.contains("the new binary is in place") && !afterMove.contains("kept"))
        // The only thing executed is root's own verified copy, after its hash check.
        let hashCheck = script.range(of: "sha256sum < \"$n\"")!.lowerBound
        let run = script.range(of: "\"$n\" --help")!.lowerBound
        #expect(hashCheck < run)
        #expect(!script.contains("sha256sum < \"$s\""), "the login user's staging file is hashed, not root's copy")
    }
}
