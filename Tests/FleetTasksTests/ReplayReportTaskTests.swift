import Fleet
import Foundation
import Replay
import ReplayReport
import Synchronization
import TestFleet
import Testing

@testable import FleetTasks

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Records with known outcomes

private func recordID(_ host: Int, _ index: Int) -> String {
    let digits = String(host * 10_000 + index, radix: 16)
    return String(repeating: "0", count: max(0, 24 - digits.count)) + digits
}

/// One exchange as the three records goreplay writes: the request, its original response and (unless
/// `replayed` is nil) the replayed one, each `latency` milliseconds after.
private func exchange(
    host: Int, _ index: Int, _ line: String, original: Int, replayed: Int?,
    originalMs: Int64 = 10, replayedMs: Int64 = 20, at start: Int64
) -> [ReplayMessage] {
    let id = recordID(host, index)
    let timestamp = start + Int64(index) * 1_000_000
    // The original stamped at the request's start with the whole time as latency (GoReplay 0.16's way, which
    // the report reads as latency alone); the replayed one after it, with its round trip.
    func response(_ type: PayloadType, _ status: Int, _ ms: Int64) -> ReplayMessage {
        ReplayMessage(
            type: type, id: id, timestamp: type == .response ? timestamp : timestamp + ms * 1_000_000,
            latency: ms * 1_000_000,
            payload: Array("HTTP/1.1 \(status) X\r\nContent-Length: 2\r\n\r\nok".utf8))
    }
    var records = [
        ReplayMessage(
            type: .request, id: id, timestamp: timestamp, latency: 0,
            payload: Array("\(line) HTTP/1.1\r\nHost: www.gov.uk\r\n\r\n".utf8))
    ]
    records.append(response(.response, original, originalMs))
    if let replayed { records.append(response(.replayedResponse, replayed, replayedMs)) }
    return records
}

private func gorBytes(_ records: [ReplayMessage]) -> Data {
    var bytes: [UInt8] = []
    for record in records { GorFormat.encode(record, into: &bytes) }
    return Data(bytes)
}

/// The `json=FILE` document, read back.
private struct FleetDocument: Decodable {
    struct Missing: Decodable {
        var host: String
        var hasSomeFiles: Bool
        var reason: String
    }
    var environment: String
    var hosts: [String]
    var missingHosts: [Missing]
    var report: DiffReport
}

private func fileMode(_ path: String) -> Int? {
    var info = stat()
    return lstat(path, &info) == 0 ? Int(info.st_mode & 0o7777) : nil
}

private func entries(_ directory: String, prefix: String) -> Set<String> {
    Set(((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(prefix) })
}

// MARK: - Without hosts

@Suite("replay-report: arguments, default paths, untrusted names")
struct ReplayReportTaskUnitTests {
    @Test("path=, html=, json=, max_size= parse; bad values are one-line errors naming the option")
    func parsing() throws {
        let task = try ReplayReportTask.parse(
            try word("replay-report:path=/a/*.gor;/b/x.gor.gz,html=out.html,json=out.json,max_size=500mb"))
        #expect(task.paths == ["/a/*.gor", "/b/x.gor.gz"])
        #expect(task.htmlPath == "out.html")
        #expect(task.jsonPath == "out.json")
        #expect(task.maxBytesPerHost == 500 << 20)
        #expect(try ReplayReportTask.parse(try word("replay-report")).maxBytesPerHost == 4 << 30)
        for (text, expected) in [
            ("replay-report:path=relative/*.gor", "option 'path=relative/*.gor': expected absolute file patterns"),
            ("replay-report:max_size=lots", "option 'max_size=lots': expected a size"),
            ("replay-report:max_size=99999999999gb", "option 'max_size=99999999999gb'"),
            ("replay-report:colour=red", "has no option 'colour='"),
            ("replay-report:now", "does not take 'now'"),
        ] {
            do {
                _ = try ReplayReportTask.parse(try word(text))
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(expected), "\(text): \(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
    }

    @Test("the default files are where deploy-goreplay makes goreplay write: --output-file as a glob, chunks included")
    func deployedPatterns() throws {
        func inventory(_ extra: [String]) -> Inventory {
            var inventory = Inventory(
                name: "staging",
                hosts: [FleetHost(name: "cache-1", address: "10.0.0.1", puppetClasses: ["router::gor"])])
            inventory.replay = ReplaySettings(arguments: [
                "router::gor": ReplayArguments(capture: "127.0.0.1:7999", targets: ["http://staging"], extraArgs: extra)
            ])
            return inventory
        }
        let host = FleetHost(name: "cache-1", address: "10.0.0.1", puppetClasses: ["router::gor"])
        func patterns(_ extra: [String]) throws -> [String] {
            try ReplayReportTask.deployedPatterns(for: host, inventory: inventory(extra))
        }
        #expect(
            try patterns([
                "--output-http-track-response", "--output-file", "/var/log/goreplay/replayed-%Y%m%d.gor.gz",
                "--output-file-append",
            ])
                == ["/var/log/goreplay/replayed-*.gor.gz"])
        // Chunked (no append): goreplay writes replayed-20261202_0.gor, and for .gz names replayed.gor_0.gz.
        #expect(
            try patterns(["-output-file=/var/log/goreplay/replayed-%Y%m%d.gor"]) == [
                "/var/log/goreplay/replayed-*_*.gor"
            ])
        #expect(
            try patterns(["--output-file", "/var/log/goreplay/replayed.gor.gz"]) == [
                "/var/log/goreplay/replayed.gor_*.gz"
            ])
        #expect(
            try patterns(["--output-file", "/var/log/goreplay/r-%t-%NS.gor|50%", "--output-file-append=true"]) == [
                "/var/log/goreplay/r-*-*.gor"
            ])
        #expect(throws: ReplayReportError.self) { try patterns([]) }
        do {
            _ = try patterns(["--output-file", "replayed.gor"])
            Issue.record("accepted a relative --output-file")
        } catch {
            #expect("\(error)".contains("relative") && "\(error)".contains("path=GLOB"))
        }
        do {
            _ = try ReplayReportTask.deployedPatterns(for: host, inventory: Inventory(name: "ci", hosts: [host]))
            Issue.record("no replay block accepted")
        } catch {
            #expect(
                "\(error)"
                    == "the ci inventory has no replay: block, so where goreplay writes is not known; give the files with path=GLOB (see help:replay-report)"
            )
        }
        // path= wins over the deployed configuration.
        let task = ReplayReportTask(paths: ["/srv/x.gor"])
        #expect(try task.patterns(for: host, inventory: Inventory(name: "ci", hosts: [host])) == ["/srv/x.gor"])
    }

    @Test("remote names are untrusted: local names keep no path, no leading dot, no control character")
    func safeNames() {
        #expect(ReplayReportTask.safeName("/var/log/goreplay/replayed-1.gor.gz") == "replayed-1.gor.gz")
        #expect(ReplayReportTask.safeName("/var/log/../../etc/passwd") == "passwd")
        #expect(ReplayReportTask.safeName("/x/..") == "file")
        #expect(ReplayReportTask.safeName("/x/.hidden") == "hidden")
        #expect(ReplayReportTask.safeName("/x/a b\u{1B}[31m\n.gor") == "a_b__31m_.gor")
        #expect(ReplayReportTask.safeName("/x/" + String(repeating: "é", count: 300)).count <= 100)
        #expect(ReplayReportTask.safeHostName("../../tmp") == "tmp")
        #expect(ReplayReportTask.safeHostName("cache-1.example") == "cache-1.example")
    }

    @Test(
        "the listing from the host is parsed defensively: bad sizes and unprintable names are passed over, symlinks noted"
    )
    func listing() {
        let output =
            "F\t120\t/log/a.gor\0F\tx\t/log/b.gor\0F\t5\t/log/\u{1B}c.gor\0L\t/log/d.gor\0F\t7\t/log/a.gor\0garbage\0T\0F\t9\t/log/e.gor.gz\0"
        let (files, notes) = ReplayReportTask.parseListing(output)
        #expect(files == [.init(path: "/log/a.gor", size: 120), .init(path: "/log/e.gor.gz", size: 9)])
        #expect(notes.contains("/log/d.gor is a symlink, not followed"))
        #expect(notes.contains("only the first 1000 files are taken"))
        #expect(notes.contains("3 file name(s) not printable UTF-8 passed over"))
    }

    @Test("report files are written 0600 and a symlink at the name is replaced, never followed")
    func privateOutput() throws {
        let directory = NSTemporaryDirectory() + "/replay-report-out-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim"
        try "keep".write(toFile: victim, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: directory + "/report.html", withDestinationPath: victim)
        try ReplayReportTask.writePrivate("<html></html>", to: directory + "/report.html")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep")
        #expect(fileMode(directory + "/report.html") == 0o600)
        #expect(try String(contentsOfFile: directory + "/report.html", encoding: .utf8) == "<html></html>")
        #expect(throws: ReplayReportError.self) {
            try ReplayReportTask.writePrivate("x", to: directory + "/missing/report.html")
        }
        #expect(entries(directory, prefix: ".report").isEmpty)
    }
}

// MARK: - On the real test fleet

/// Three hosts that log in as `oncall` (non-root, NOPASSWD sudo, as production), whose goreplay
/// log directory and files are root's alone (0700 and 0600, as goreplay writes them).
struct ReplayReportFleet {
    let setup: GoReplayFleet
    var inventory: Inventory
    static let logDirectory = "/opt/goreplay/log"

    init() throws {
        setup = try GoReplayFleet(hostCount: 3)
        var inventory = setup.inventory
        // Where deploy-goreplay makes each host's goreplay write: gor-2's files are gzip.
        let common = ["--output-http-track-response", "--output-file-append", "--output-file"]
        inventory.replay = ReplaySettings(
            binaryPath: "/opt/goreplay/bin/goreplay",
            arguments: [
                "gor": ReplayArguments(
                    capture: "{address}:7999", targets: ["http://127.0.0.1:8099"],
                    extraArgs: common + ["\(Self.logDirectory)/replayed-%Y%m%d.gor"]),
                "gor-2": ReplayArguments(
                    capture: "{address}:7999", targets: ["http://127.0.0.1:8099"],
                    extraArgs: common + ["\(Self.logDirectory)/replayed-%Y%m%d.gor.gz"]),
            ])
        self.inventory = inventory
        for host in setup.fleet.hosts {
            let directory = host.realPath(Self.logDirectory)
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o700)
        }
    }

    /// Writes a root-owned 0600 file on the host (gzip when the name ends in .gz).
    func put(_ records: [ReplayMessage], on name: String, as file: String, raw: Data? = nil) throws {
        let path = try setup.host(name).realPath("\(Self.logDirectory)/\(file)")
        var data = raw ?? gorBytes(records)
        if raw == nil && file.hasSuffix(".gz") {
            let plain = path + ".plain"
            try data.write(to: URL(fileURLWithPath: plain))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/gzip")
            process.arguments = ["-c", plain]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            try FileManager.default.removeItem(atPath: plain)
        }
        try data.write(to: URL(fileURLWithPath: path))
        chown(path, 0, 0)
        chmod(path, 0o600)
    }

    /// Runs the task through the real runner; returns the report, per-host outcomes and every notice.
    func run(_ task: ReplayReportTask, on names: [String]? = nil) async throws -> (RunReport, [String]) {
        let context = RunContext(inventory: inventory, time: WindowTests.noon)
        try task.preflight(context)
        let hosts = inventory.hosts.filter { names?.contains($0.name) ?? true }
        let notices = Mutex([String]())
        let runner = FleetRunner(
            context: context, options: RunnerOptions(parallelism: 10, client: .from(inventory)),
            emit: { event in
                if case .notice(nil, let message, _) = event { notices.withLock { $0.append(message) } }
            })
        let report = await runner.run([PlannedTask(task: task, hosts: hosts)])
        return (report, notices.withLock { $0 })
    }
}

@Suite(
    "replay-report on the real test fleet", .serialized,
    .enabled(if: TestFleet.isSupported, "needs root, sshd, unshare"))
struct ReplayReportFleetTests {
    let output: String
    /// This test's own directories for the hosts' private copies (/var/tmp is shared with the hosts) and
    /// for this machine's downloads, so what is left behind is this test's alone.
    let staging: String
    let local: String

    init() throws {
        output = NSTemporaryDirectory() + "/replay-report-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        staging = "/var/tmp/replay-report-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        chmod(staging, 0o1777)
        local = output + "/downloads"
        try FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
    }

    func task(
        htmlPath: String? = nil, jsonPath: String? = nil, maxBytesPerHost: Int = ReplayReportTask.defaultMaxBytesPerHost
    ) -> ReplayReportTask {
        ReplayReportTask(
            htmlPath: htmlPath, jsonPath: jsonPath, maxBytesPerHost: maxBytesPerHost, localBase: local,
            stagingBase: staging)
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: output)
        try? FileManager.default.removeItem(atPath: staging)
    }

    @Test(
        "three oncall hosts, root-only files (.gor and .gor.gz) fetched through sudo: one merged report; a host with no file is failed and named"
    )
    func mergedReport() async throws {
        defer { cleanUp() }
        let fleet = try ReplayReportFleet()
        defer { fleet.setup.fleet.stop() }
        #expect(fleet.inventory.ssh.user == "oncall")
        let start: Int64 = 1_764_000_000_000_000_000
        // gor-1: two days of files; 10 content requests answered alike, 3 health checks never replayed.
        try fleet.put(
            (0..<10).flatMap {
                exchange(host: 1, $0, "GET /api/content/\($0 + 100)", original: 200, replayed: 200, at: start)
            },
            on: "gor-1", as: "replayed-20261201.gor")
        try fleet.put(
            (10..<13).flatMap { exchange(host: 1, $0, "GET /healthcheck", original: 200, replayed: nil, at: start) },
            on: "gor-1", as: "replayed-20261202.gor")
        // gor-2 (gzip): 5 searches staging answers 500, 3x slower; 2 more content requests alike.
        try fleet.put(
            (0..<5).flatMap {
                exchange(
                    host: 2, $0, "GET /search?q=tax\($0)", original: 200, replayed: 500, originalMs: 10, replayedMs: 30,
                    at: start)
            }
                + (5..<7).flatMap {
                    exchange(host: 2, $0, "GET /api/content/\($0)", original: 200, replayed: 200, at: start)
                },
            on: "gor-2", as: "replayed-20261202.gor.gz")
        // A file that is not goreplay's name, and a symlink to a secret: neither is fetched.
        try fleet.put([], on: "gor-2", as: "other.log", raw: Data("x".utf8))
        try FileManager.default.createSymbolicLink(
            atPath: try fleet.setup.host("gor-2").realPath("\(ReplayReportFleet.logDirectory)/replayed-link.gor.gz"),
            withDestinationPath: "/etc/shadow")
        // gor-3 wrote nothing.
        // oncall cannot read the files itself: only sudo can.
        let direct = try fleet.setup.fleet.run(
            on: "gor-1", "runuser -u oncall -- cat \(ReplayReportFleet.logDirectory)/replayed-20261201.gor")
        #expect(direct.status != 0)

        let (report, notices) = try await fleet.run(
            task(htmlPath: output + "/fleet.html", jsonPath: output + "/fleet.json"))

        #expect(outcome(report, "gor-1")?.hostOutcome.isSuccess == true)
        #expect(outcome(report, "gor-1")?.message?.contains("2 of 2 file(s)") == true)
        #expect(
            outcome(report, "gor-1")?.message?.contains("13 requests, 13 original and 10 replayed responses") == true)
        #expect(outcome(report, "gor-2")?.hostOutcome.isSuccess == true)
        #expect(outcome(report, "gor-2")?.message?.contains("replayed-link.gor.gz is a symlink, not followed") == true)
        #expect(outcome(report, "gor-3")?.hostOutcome.isFailure == true)
        #expect(
            outcome(report, "gor-3")?.message?.contains("no file matches /opt/goreplay/log/replayed-*.gor on the host")
                == true)
        #expect(report.exitStatus == 1)

        let text = notices.joined(separator: "\n")
        #expect(text.contains("replay-report: 2 of 3 host(s), 3 file(s)"))
        #expect(text.contains("missing: gor-3: no file matches"))

        let data = try Data(contentsOf: URL(fileURLWithPath: output + "/fleet.json"))
        let document = try JSONDecoder().decode(FleetDocument.self, from: data)
        #expect(document.hosts == ["gor-1", "gor-2"])
        #expect(document.missingHosts.map(\.host) == ["gor-3"])
        let merged = document.report
        #expect(
            merged.files == [
                "gor-1:/opt/goreplay/log/replayed-20261201.gor", "gor-1:/opt/goreplay/log/replayed-20261202.gor",
                "gor-2:/opt/goreplay/log/replayed-20261202.gor.gz",
            ])
        #expect(merged.requests == 20)
        #expect(merged.compared == 17)
        #expect(merged.mismatched == 5)
        #expect(
            Set(merged.statusPairs.map { "\($0.original)>\($0.replayed)=\($0.count)" }) == ["200>200=12", "200>500=5"])
        #expect(merged.noReplayedResponse.reduce(0) { $0 + $1.count } == 3)
        let endpoints = Dictionary(merged.endpoints.map { ($0.endpoint, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(endpoints["GET /api/content/{n}"]?.requests == 12)
        #expect(endpoints["GET /api/content/{n}"]?.mismatched == 0)
        #expect(endpoints["GET /search"]?.requests == 5)
        #expect(endpoints["GET /search"]?.mismatched == 5)
        // Percentiles are kept in 5%-wide buckets.
        let searchRatio = try #require(endpoints["GET /search"]?.ratioP50)
        #expect(abs(searchRatio - 3) < 0.3, "ratio \(searchRatio)")
        let contentRatio = try #require(endpoints["GET /api/content/{n}"]?.ratioP50)
        #expect(abs(contentRatio - 2) < 0.2, "ratio \(contentRatio)")
        #expect(endpoints["GET /healthcheck"]?.noReplayedResponse == 3)

        #expect(fileMode(output + "/fleet.json") == 0o600)
        #expect(fileMode(output + "/fleet.html") == 0o600)
        let html = try String(contentsOfFile: output + "/fleet.html", encoding: .utf8)
        #expect(html.contains("missing: gor-3"))
        #expect(html.contains("gor-2:/opt/goreplay/log/replayed-20261202.gor.gz"))
        // Nothing left behind: not on the hosts (their /var/tmp), not here.
        #expect(entries(staging, prefix: "") == [])
        #expect(entries(local, prefix: "") == [])
        // The hosts' files are untouched.
        #expect(
            fileMode(try fleet.setup.host("gor-1").realPath("\(ReplayReportFleet.logDirectory)/replayed-20261201.gor"))
                == 0o600)
    }

    @Test(
        "a corrupt file fails its host with the file named; too much data fails before copying; the rest still report")
    func badFiles() async throws {
        defer { cleanUp() }
        let fleet = try ReplayReportFleet()
        defer { fleet.setup.fleet.stop() }
        let start: Int64 = 1_764_000_000_000_000_000
        try fleet.put(
            (0..<4).flatMap { exchange(host: 1, $0, "GET /a/\($0)", original: 200, replayed: 404, at: start) },
            on: "gor-1", as: "replayed-20261202.gor")
        // gor-2: gzip magic, then garbage; and a second, good file.
        try fleet.put(
            [], on: "gor-2", as: "replayed-20261201.gor.gz",
            raw: Data([0x1F, 0x8B, 0x08, 0x00] + (0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
        try fleet.put(
            (0..<2).flatMap { exchange(host: 2, $0, "GET /b/\($0)", original: 200, replayed: 200, at: start) },
            on: "gor-2", as: "replayed-20261202.gor.gz")
        // gor-3: plain text where goreplay's file should be.
        try fleet.put(
            [], on: "gor-3", as: "replayed-20261202.gor",
            raw: Data(String(repeating: "not a gor file\n", count: 50).utf8))

        let (report, notices) = try await fleet.run(task(jsonPath: output + "/bad.json"))
        let gor2 = outcome(report, "gor-2")
        #expect(gor2?.hostOutcome.isFailure == true)
        #expect(
            gor2?.message?.contains("/opt/goreplay/log/replayed-20261201.gor.gz: unreadable as .gor") == true,
            "\(gor2?.message ?? "")")
        #expect(gor2?.message?.contains("the other files are in the report") == true)
        let gor3 = outcome(report, "gor-3")
        #expect(gor3?.hostOutcome.isFailure == true)
        #expect(
            gor3?.message?.contains("/opt/goreplay/log/replayed-20261202.gor: not a .gor file") == true,
            "\(gor3?.message ?? "")")
        #expect(outcome(report, "gor-1")?.hostOutcome.isSuccess == true)

        let document = try JSONDecoder().decode(
            FleetDocument.self, from: Data(contentsOf: URL(fileURLWithPath: output + "/bad.json")))
        #expect(document.report.requests == 6)
        #expect(
            Set(document.report.statusPairs.map { "\($0.original)>\($0.replayed)=\($0.count)" }) == [
                "200>404=4", "200>200=2",
            ])
        #expect(document.missingHosts.map(\.host) == ["gor-2", "gor-3"])
        #expect(document.missingHosts.first?.hasSomeFiles == true)
        #expect(notices.joined(separator: "\n").contains("incomplete: gor-2 (some files left out)"))

        // max_size: the listing's sizes are over the bound, nothing is copied.
        let (small, smallNotices) = try await fleet.run(task(maxBytesPerHost: 100), on: ["gor-1"])
        #expect(
            outcome(small, "gor-1")?.message?.contains("more than max_size=100 B; narrow path= or raise max_size=")
                == true)
        #expect(
            smallNotices.contains { $0.contains("replay-report: FAILED: no host delivered a readable response file") })
        #expect(small.exitStatus == 1)
        #expect(entries(staging, prefix: "") == [])
        #expect(entries(local, prefix: "") == [])
    }

    @Test("Ctrl-C while a large file downloads: the host's private copy directory is removed anyway")
    func interruptedCleanUp() async throws {
        defer { cleanUp() }
        let fleet = try ReplayReportFleet()
        defer { fleet.setup.fleet.stop() }
        let big = try fleet.setup.host("gor-1").realPath("\(ReplayReportFleet.logDirectory)/replayed-20261202.gor")
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        #expect(truncate(big, 768 << 20) == 0)
        chmod(big, 0o600)
        let interruptible = task()
        let run = Task { try await fleet.run(interruptible, on: ["gor-1"]) }
        // Wait until the copy exists in a new private directory, then interrupt.
        let deadline = ContinuousClock.now + .seconds(120)
        var sawCopy = false
        while ContinuousClock.now < deadline && !sawCopy {
            for directory in entries(staging, prefix: ReplayReportTask.stagingPrefix)
            where FileManager.default.fileExists(atPath: "\(staging)/\(directory)/copy") {
                sawCopy = true
            }
            if !sawCopy { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(sawCopy, "the copy never appeared in /var/tmp")
        run.cancel()
        let (report, notices) = try await run.value
        let interrupted = outcome(report, "gor-1")?.hostOutcome
        #expect(
            interrupted.map { if case .skipped(let why) = $0 { why.hasPrefix("interrupted") } else { false } } == true,
            "\(String(describing: interrupted))")
        #expect(notices.contains("replay-report: interrupted; no report"))
        #expect(entries(staging, prefix: "") == [])
        #expect(entries(local, prefix: "") == [])
    }
}
