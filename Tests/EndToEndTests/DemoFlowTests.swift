import Foundation
import TestFleet
import Testing

/// The demo's story at small scale, asserting each step's effect on the hosts
/// and at the staging server: deploy goreplay, mirror traffic, data sync,
/// aborted sync, recovery.
/// The demo flow and make demo's script both deploy goreplay as `oncall` into the hosts' shared
/// /tmp, where a deploy removes that uid's aged staging files: run them one after the other, so each
/// deploy's clean-up report is its own.
@Suite(.serialized)
enum DeployingTheDemo {}

extension DeployingTheDemo {
    @Suite(
        "deploy and replay, end to end", .serialized,
        .enabled(if: fleetAvailable && GoReplayBinary.exists, "needs root, sshd and built binaries"))
    struct DemoFlowTests {
        static let day = "2026-11-25T12:00:00Z"
        static let night = "2026-11-25T23:30:00Z"

        @Test func deployMirrorSyncAndRecover() async throws {
            let staging = try StagingServer()
            defer { staging.stop() }
            let appPort = try freePort()
            let fleet = try FleetInventory(
                hosts: 2, prefix: "cache",
                extra: """
                    replay:
                      binary_path: /opt/goreplay/bin/goreplay
                      service: goreplay
                      args:
                        gor: {capture: "{address}:\(appPort)", targets: ["http://127.0.0.1:\(staging.port)"], allow_methods: [GET, HEAD, OPTIONS]}
                    """)
            let apps = try fleet.fleet.hosts.map { try AppServer(address: $0.address, port: appPort) }
            // Puppet makes the marker's directory on real hosts.
            for host in fleet.fleet.hosts {
                try FileManager.default.createDirectory(
                    atPath: host.realPath("/etc/govuk/env.d"), withIntermediateDirectories: true)
            }
            defer { for app in apps { app.stop() } }
            let binary = "binary=\(GoReplayBinary.path)"

            // 1. Deploy: binary installed, run script written, goreplay running on every host.
            let deploy = try await fleet.fab(
                ["puppet_class:gor", "deploy-goreplay:\(binary)"], environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(deploy.status == 0, "\(deploy)")
            for name in fleet.names {
                #expect(try fleet.goreplayRunning(on: name), "\(name): goreplay not running after deploy")
                let installed = try #require(fleet.fleet.host(named: name)).realPath("/opt/goreplay/bin/goreplay")
                #expect(try sha256(installed) == sha256(GoReplayBinary.path))
            }

            // 2. Traffic to production is mirrored; only GET/HEAD/OPTIONS reach staging.
            try await sendTraffic(fleet, port: appPort)
            let first = try await staging.waitFor(
                get: 3 * fleet.names.count, head: fleet.names.count, options: fleet.names.count)
            #expect(first["POST"] == nil, "POST must not be replayed: \(first)")
            #expect(first["OPTIONS"] == fleet.names.count, "\(first)")

            // 3. A second deploy changes nothing.
            let again = try await fleet.fab(
                ["puppet_class:gor", "deploy-goreplay:\(binary)"], environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(again.status == 0)
            #expect(
                again.stdout.components(separatedBy: "up to date, nothing to do").count - 1 == fleet.names.count,
                "\(again)")

            // 4. The nightly sync: marker 'true', goreplay stopped; check is OK inside the window.
            let sync = try await fleet.fab(
                ["puppet_class:gor", "data-sync.start"], environment: ["GOVUK_FAB_NOW": Self.night])
            #expect(sync.status == 0, "\(sync)")
            for name in fleet.names {
                #expect(try !fleet.goreplayRunning(on: name))
                #expect(try markerContent(fleet, name) == "true\n" || markerContent(fleet, name) == "true")
            }
            let duringSync = try await fleet.fab(
                ["puppet_class:gor", "check-goreplay"], environment: ["GOVUK_FAB_NOW": Self.night])
            #expect(duringSync.status == 0, "\(duringSync)")

            // 5. The sync aborted: next day the check is CRITICAL.
            let critical = try await fleet.fab(
                ["puppet_class:gor", "check-goreplay"], environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(critical.status == 2, "\(critical)")
            #expect(critical.stdout.contains("PROCS CRITICAL: 0 processes with command name 'goreplay'"))

            // 6. Recovery refuses in the window, works in the day, and is idempotent.
            let refused = try await fleet.fab(
                ["puppet_class:gor", "recover-goreplay"], environment: ["GOVUK_FAB_NOW": Self.night])
            #expect(refused.status == 3, "\(refused)")
            let recovered = try await fleet.fab(
                ["puppet_class:gor", "recover-goreplay"], environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(recovered.status == 0, "\(recovered)")
            for name in fleet.names {
                #expect(try fleet.goreplayRunning(on: name))
                #expect(try markerContent(fleet, name)?.trimmingCharacters(in: .whitespacesAndNewlines) == "")
            }
            let ok = try await fleet.fab(
                ["puppet_class:gor", "check-goreplay"], environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(ok.status == 0, "\(ok)")

            // 7. Staging receives traffic again.
            try await sendTraffic(fleet, port: appPort)
            _ = try await staging.waitFor(
                get: 6 * fleet.names.count, head: 2 * fleet.names.count, options: 2 * fleet.names.count)
        }

        /// A deploy interrupted in the middle of the upload leaves the old binary
        /// installed and running on every host.
        @Test func interruptedDeployKeepsTheOldBinary() async throws {
            let (fleet, oldHash) = try await fleetWithGoReplayDeployed()

            // A much larger (still valid) binary takes seconds to upload on loopback.
            let big = fleet.directory + "/goreplay-big"
            try FileManager.default.copyItem(atPath: GoReplayBinary.path, toPath: big)
            let handle = try #require(FileHandle(forWritingAtPath: big))
            try handle.seekToEnd()
            let padding = Data(count: 8 << 20)
            for _ in 0..<48 { try handle.write(contentsOf: padding) }
            try handle.close()

            let interrupted = try await fleet.fab(
                ["puppet_class:gor", "deploy-goreplay:binary=\(big)"],
                environment: ["GOVUK_FAB_NOW": Self.day], interruptAfter: .milliseconds(1500))
            #expect(interrupted.status == 130, "\(interrupted)")
            for name in fleet.names {
                let installed = try #require(fleet.fleet.host(named: name)).realPath("/opt/goreplay/bin/goreplay")
                #expect(try sha256(installed) == oldHash, "\(name) has a changed binary after an interrupted deploy")
                #expect(try fleet.goreplayRunning(on: name), "\(name): the old goreplay stopped")
                #expect(
                    try fleet.fleet.run(on: name, "/opt/goreplay/bin/goreplay --help >/dev/null 2>&1; echo $?").output
                        .trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            }

            // An interrupted upload leaves its staging file (a mktemp name, the login user's) in the shared
            // /tmp. Once older than 10 minutes the next deploy removes it; a fresh one (a deploy running at
            // the same time) is kept. (Other tests' fleets share /tmp and the uid, so only files made here
            // are aged; whether this run's interrupt came mid-upload depends on load.)
            let user = fleet.fleet.user
            let old = [
                "/tmp/.goreplay.govuk-fab.leftover\(getpid())", "/tmp/..goreplay.govuk-fab-1.govuk-fab-\(getpid())",
            ]
            for path in old {
                try fleet.fleet.run(on: fleet.names[0], "su -s /bin/sh \(user) -c 'touch -d \"1 hour ago\" \(path)'")
                #expect(FileManager.default.fileExists(atPath: path))
            }
            let fresh = "/tmp/.goreplay.govuk-fab.concurrent\(getpid())"
            try fleet.fleet.run(on: fleet.names[0], "su -s /bin/sh \(user) -c 'touch \(fresh)'")
            defer { unlink(fresh) }
            let again = try await fleet.fab(
                ["puppet_class:gor", "deploy-goreplay:binary=\(GoReplayBinary.path)"],
                environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(again.status == 0, "\(again)")
            #expect(again.stdout.contains("left by interrupted deploys"), "\(again.stdout)")
            for path in old { #expect(!FileManager.default.fileExists(atPath: path), "\(path) left behind") }
            #expect(FileManager.default.fileExists(atPath: fresh), "a concurrent deploy's staging file was removed")
        }

        /// A binary that cannot run on the host (here: its interpreter is missing, as a Swift runtime
        /// would be) is refused after upload, before it replaces anything; the old one keeps running.
        @Test func binaryThatDoesNotRunOnTheHostIsNotInstalled() async throws {
            let (fleet, oldHash) = try await fleetWithGoReplayDeployed()

            let broken = fleet.directory + "/goreplay-broken"
            try "#!/nonexistent/swift-runtime/goreplay\n".write(toFile: broken, atomically: true, encoding: .utf8)
            chmod(broken, 0o755)
            let refused = try await fleet.fab(
                ["puppet_class:gor", "deploy-goreplay:binary=\(broken)"],
                environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(refused.status == 1, "\(refused)")
            #expect((refused.stdout + refused.stderr).contains("does not run on this host"), "\(refused)")
            for name in fleet.names {
                let host = try #require(fleet.fleet.host(named: name))
                #expect(try sha256(host.realPath("/opt/goreplay/bin/goreplay")) == oldHash, "\(name): binary replaced")
                #expect(try fleet.goreplayRunning(on: name), "\(name): the old goreplay stopped")
                let leftovers = try fleet.fleet.run(on: name, "ls -A /opt/goreplay/bin").output
                #expect(
                    leftovers.trimmingCharacters(in: .whitespacesAndNewlines) == "goreplay",
                    "\(name): staging files left: \(leftovers)")
            }
        }

        /// Two cache hosts with this build's goreplay deployed and running; returns the binary's sha256.
        func fleetWithGoReplayDeployed() async throws -> (FleetInventory, String) {
            let fleet = try FleetInventory(
                hosts: 2, prefix: "cache",
                extra: """
                    replay:
                      binary_path: /opt/goreplay/bin/goreplay
                      service: goreplay
                      args:
                        gor: {capture: "{address}:9", targets: ["http://127.0.0.1:1"]}
                    """)
            let first = try await fleet.fab(
                ["puppet_class:gor", "deploy-goreplay:binary=\(GoReplayBinary.path)"],
                environment: ["GOVUK_FAB_NOW": Self.day])
            #expect(first.status == 0, "\(first)")
            let oldHash = try sha256(GoReplayBinary.path)
            return (fleet, oldHash)
        }

        func markerContent(_ fleet: FleetInventory, _ name: String) throws -> String? {
            let path = try #require(fleet.fleet.host(named: name)).realPath(fleet.marker)
            return try? String(contentsOfFile: path, encoding: .utf8)
        }

        func sendTraffic(_ fleet: FleetInventory, port: Int) async throws {
            // goreplay needs a moment after (re)start to open its capture.
            try await Task.sleep(for: .seconds(1))
            for host in fleet.fleet.hosts {
                for method in ["GET", "GET", "GET", "HEAD", "OPTIONS", "POST", "DELETE"] {
                    _ = try await HTTP.send(
                        method, "http://\(host.address):\(port)/demo", body: method == "POST" ? "a=1" : nil)
                }
            }
        }
    }
}

enum GoReplayBinary {
    static var path: String {
        URL(fileURLWithPath: GovukFabBinary.path).deletingLastPathComponent().appendingPathComponent("goreplay").path
    }
    static var exists: Bool { FileManager.default.isExecutableFile(atPath: path) }
}

/// One HTTP exchange with curl (Foundation's URLSession on Linux needs libcurl anyway).
enum HTTP {
    static func send(_ method: String, _ url: String, body: String? = nil) async throws -> Int32 {
        var arguments = ["-s", "-o", "/dev/null", "--max-time", "5", "-X", method]
        if method == "HEAD" { arguments = ["-s", "-o", "/dev/null", "--max-time", "5", "-I"] }
        if let body { arguments += ["--data-binary", body] }
        arguments.append(url)
        return try await Subprocess.run("/usr/bin/curl", arguments).status
    }
}

/// A process run on its own thread (never blocking the cooperative pool).
enum Subprocess {
    static func run(_ path: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        let process = Process()
                        process.executableURL = URL(fileURLWithPath: path)
                        process.arguments = arguments
                        let pipe = Pipe()
                        process.standardOutput = pipe
                        process.standardError = FileHandle.nullDevice
                        process.standardInput = FileHandle.nullDevice
                        try process.run()
                        let data = pipe.fileHandleForReading.readDataToEndOfFile()
                        process.waitUntilExit()
                        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
                    })
            }.start()
        }
    }
}

/// scripts/demo-http.py in a mode, started and stopped by pid.
final class PythonServer: @unchecked Sendable {
    let process = Process()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", GovukFabBinary.repositoryRoot + "/scripts/demo-http.py"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits (bounded) until something accepts connections on address:port.
    static func waitListening(_ address: String, _ port: Int) throws {
        for _ in 0..<100 {
            if canConnect(address, port) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CLIFixtureError("nothing listens on \(address):\(port) after 5 s")
    }
}

final class AppServer: @unchecked Sendable {
    let server: PythonServer
    init(address: String, port: Int) throws {
        server = try PythonServer(["app", address, String(port), "app"])
        try PythonServer.waitListening(address, port)
    }
    func stop() { server.stop() }
}

final class StagingServer: @unchecked Sendable {
    let port: Int
    let countsPath: String
    let server: PythonServer

    init() throws {
        port = try freePort()
        countsPath = NSTemporaryDirectory() + "govuk-fab-staging-\(getpid())-\(port).json"
        server = try PythonServer(["staging", "127.0.0.1", String(port), countsPath])
        try PythonServer.waitListening("127.0.0.1", port)
    }

    var counts: [String: Int] {
        guard let data = FileManager.default.contents(atPath: countsPath),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Int]
        else { return [:] }
        return object
    }

    /// Waits up to 15 s for at least these counts; returns what it saw.
    func waitFor(get: Int, head: Int, options: Int) async throws -> [String: Int] {
        for _ in 0..<150 {
            let seen = counts
            if (seen["GET"] ?? 0) >= get && (seen["HEAD"] ?? 0) >= head && (seen["OPTIONS"] ?? 0) >= options {
                return seen
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("staging saw \(counts), expected at least \(get) GET and \(head) HEAD")
        return counts
    }

    func stop() {
        server.stop()
        try? FileManager.default.removeItem(atPath: countsPath)
    }
}

struct CLIFixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func canConnect(_ address: String, _ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, address, &sin.sin_addr)
    return withUnsafePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = 0
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw CLIFixtureError("cannot bind a port on 127.0.0.1") }
    return Int(UInt16(bigEndian: sin.sin_port))
}

func sha256(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}
