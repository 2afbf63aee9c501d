import Fleet
import Foundation
import Replay
import ReplayReport
import SSHTransport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `replay-report`: fetches the `.gor` files every selected GoReplay host writes (requests, original
/// and replayed responses) over SFTP and builds one `goreplay report` for the fleet, locally.
///
/// Per host: the files matching the pattern (by default where the host's deployed goreplay writes,
/// from its `--output-file`) are listed through sudo, copied one at a time by sudo into a private
/// `mktemp -d` directory of the login user (goreplay writes them 0600 as root), downloaded, and the
/// directory removed, also on failure or Ctrl-C. Each downloaded file is read through once before it
/// counts: a corrupt one fails its host with the file named. The finish step merges every good file
/// into one report; hosts that delivered nothing are listed as missing.
public struct ReplayReportTask: DescribedTask {
    public let invocation: TaskInvocation
    /// `path=`: remote file patterns replacing the deployed `--output-file` (absolute; `*` `?` `[]` globs).
    public var paths: [String]
    /// `html=FILE`: the self-contained page, written locally.
    public var htmlPath: String?
    /// `json=FILE`: the report and the hosts it covers, written locally.
    public var jsonPath: String?
    /// `max_size=SIZE`: bytes fetched from one host at most.
    public var maxBytesPerHost: Int
    /// Where downloads wait for the finish step; one per run.
    let collection: Collection
    /// The hosts' directory for private copies (tests give their own).
    var stagingBase = "/var/tmp"

    public static let defaultMaxBytesPerHost = 4 << 30
    /// Files taken from one host at most (the listing stops there).
    static let maxFilesPerHost = 1000
    /// Host temporary directories (and the sweep of those an earlier run could not remove).
    static let stagingPrefix = "govuk-fab-replay-report."

    public init(
        invocation: TaskInvocation = TaskInvocation(name: "replay-report"), paths: [String] = [],
        htmlPath: String? = nil, jsonPath: String? = nil, maxBytesPerHost: Int = ReplayReportTask.defaultMaxBytesPerHost
    ) {
        self.init(
            invocation: invocation, paths: paths, htmlPath: htmlPath, jsonPath: jsonPath,
            maxBytesPerHost: maxBytesPerHost,
            localBase: NSTemporaryDirectory())
    }

    /// `localBase`: where this machine's private download directory is made (tests give their own).
    init(
        invocation: TaskInvocation = TaskInvocation(name: "replay-report"), paths: [String] = [],
        htmlPath: String? = nil, jsonPath: String? = nil,
        maxBytesPerHost: Int = ReplayReportTask.defaultMaxBytesPerHost,
        localBase: String, stagingBase: String = "/var/tmp"
    ) {
        self.invocation = invocation
        self.paths = paths
        self.htmlPath = htmlPath
        self.jsonPath = jsonPath
        self.maxBytesPerHost = maxBytesPerHost
        self.collection = Collection(base: localBase)
        self.stagingBase = stagingBase
    }

    public static let descriptor = TaskDescriptor(
        name: "replay-report", usage: "replay-report[:path=GLOB,html=FILE,json=FILE,max_size=SIZE]",
        summary: "One goreplay report for the fleet: every host's .gor files fetched over SFTP, compared locally.",
        details: """
            Fetches from each host the `.gor` files its goreplay writes (by default the
            `--output-file` deploy-goreplay configures for it, as a glob: `%Y`… and chunk numbers
            match anything; `path=GLOB[;GLOB]` overrides), and reports what the replay target did
            with the recorded requests, as `goreplay report` does: status pairs, endpoints, latency,
            missing replies. One report for all hosts, printed at the end; `html=FILE` and
            `json=FILE` also write it locally (mode 0600). Files are listed and copied through
            `sudo -n` into a private `mktemp -d` directory in /var/tmp, downloaded over SFTP and
            removed (also on failure or Ctrl-C). `max_size` (default 4gb) bounds what one host
            sends. A host with no file, a file too large or unreadable as `.gor` fails alone with
            the cause; the report is built from the other hosts and names the missing ones.
            Read-only.
            """, changesHosts: false)

    public var descriptor: TaskDescriptor { Self.descriptor }

    static var usage: String { descriptor.usage }

    static func parse(_ invocation: TaskInvocation) throws(TaskError) -> ReplayReportTask {
        if let extra = invocation.positional.first {
            throw TaskError(
                word: invocation.raw, problem: .extraArguments(task: invocation.name, usage: usage, extra: [extra]))
        }
        var task = ReplayReportTask(invocation: invocation)
        func invalid(_ keyword: TaskKeyword, _ expected: String) -> TaskError {
            TaskError(
                word: invocation.raw,
                problem: .invalidValue(
                    task: invocation.name, keyword: keyword.name, value: keyword.value, expected: expected))
        }
        for keyword in invocation.keywords {
            switch keyword.name {
            case "path":
                let patterns = keyword.value.split(separator: ";").map(String.init)
                guard !patterns.isEmpty,
                    patterns.allSatisfy({ $0.hasPrefix("/") && !$0.contains("\n") && !$0.hasSuffix("/") })
                else {
                    throw invalid(keyword, "absolute file patterns separated by ';', e.g. /var/log/goreplay/*.gor.gz")
                }
                task.paths += patterns
            case "html", "json":
                guard !keyword.value.isEmpty, !keyword.value.hasSuffix("/") else {
                    throw invalid(keyword, "a local file name")
                }
                if keyword.name == "html" { task.htmlPath = keyword.value } else { task.jsonPath = keyword.value }
            case "max_size":
                guard let bytes = parseSize(keyword.value), bytes > 0 else {
                    throw invalid(keyword, "a size such as 500mb or 4gb (kb, mb, gb: powers of 1024)")
                }
                task.maxBytesPerHost = bytes
            default:
                throw TaskError(
                    word: invocation.raw,
                    problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: usage))
            }
        }
        return task
    }

    /// `123`, `10kb`, `500mb`, `4gb` (case-insensitive, powers of 1024).
    static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased()
        let units: [(String, Int)] = [("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("b", 1)]
        for (suffix, scale) in units where lower.hasSuffix(suffix) {
            guard let number = Int(lower.dropLast(suffix.count)) else { return nil }
            let (bytes, overflow) = number.multipliedReportingOverflow(by: scale)
            return overflow ? nil : bytes
        }
        return Int(lower)
    }

    /// Refuses before any host is touched when a local output file could not be written.
    public func preflight(_ context: RunContext) throws(TaskRefusal) {
        for path in [htmlPath, jsonPath].compactMap({ $0 }) {
            let directory = (path as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            guard
                FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory),
                isDirectory.boolValue
            else {
                throw TaskRefusal(
                    task: invocation.raw, reason: "the directory of \(path) does not exist",
                    remedy: "create it, or name a file in an existing directory")
            }
        }
    }

    // MARK: - Where the files are

    /// The patterns to fetch on `host`: `path=`, or the `--output-file` its deployed goreplay writes.
    func patterns(for host: FleetHost, inventory: Inventory) throws(ReplayReportError) -> [String] {
        if !paths.isEmpty { return paths }
        return try Self.deployedPatterns(for: host, inventory: inventory)
    }

    /// `--output-file` templates in the goreplay command line deploy-goreplay writes for `host`, as
    /// globs: name patterns (`%Y`, `%t`, …) become `*`, and without `--output-file-append` the chunk
    /// suffix `_N` goreplay adds becomes `_*`.
    static func deployedPatterns(for host: FleetHost, inventory: Inventory) throws(ReplayReportError) -> [String] {
        guard let settings = inventory.replay else {
            throw .noPattern(
                "the \(inventory.name) inventory has no replay: block, so where goreplay writes is not known")
        }
        let argv: [String]
        do {
            argv = try ReplayServiceDefinition.topologyArguments(settings, host: host, inventory: inventory)
        } catch {
            throw .noPattern(error.reason)
        }
        var templates: [String] = []
        var append = false
        var index = 0
        while index < argv.count {
            let word = argv[index]
            let flag = word.drop { $0 == "-" }
            let name = flag.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            let inline =
                flag.contains("=")
                ? String(flag.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[1]) : nil
            if word.hasPrefix("-") && name == "output-file" {
                if let inline {
                    templates.append(inline)
                } else if index + 1 < argv.count {
                    templates.append(argv[index + 1])
                    index += 1
                }
            } else if word.hasPrefix("-") && name == "output-file-append" {
                append = inline.map { ["1", "t", "true", "TRUE", "True"].contains($0) } ?? true
            }
            index += 1
        }
        guard !templates.isEmpty else {
            throw .noPattern(
                "the goreplay deploy-goreplay runs on \(host.name) writes no --output-file "
                    + "(add --output-file and --output-http-track-response to its replay args' extra_args)")
        }
        return try templates.map { template throws(ReplayReportError) in
            guard template.hasPrefix("/") else {
                throw .noPattern("its --output-file \(template) is relative to the service's working directory")
            }
            // GoReplay's `|N` rate suffix is not part of the name.
            let name =
                template.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
                ?? template
            var glob = ""
            var characters = Substring(name)
            while let character = characters.first {
                characters.removeFirst()
                if character == "%", let token = characters.first, "YmdHMSNtri".contains(token) {
                    characters.removeFirst()
                    if token == "N", characters.first == "S" { characters.removeFirst() }
                    if !glob.hasSuffix("*") { glob += "*" }
                } else {
                    glob.append(character)
                }
            }
            return append ? glob : chunkGlob(glob)
        }
    }

    /// `replayed.gor` → `replayed_*.gor` (goreplay's chunk names put `_N` before the last extension).
    static func chunkGlob(_ name: String) -> String {
        let slash = name.lastIndex(of: "/")
        if let dot = name.lastIndex(of: "."), slash.map({ dot > name.index(after: $0) }) ?? true {
            return "\(name[..<dot])_*\(name[dot...])"
        }
        return name + "_*"
    }

    // MARK: - Remote commands

    /// Lists regular files matching `patterns`, NUL-terminated: `F<TAB>size<TAB>path`, `L<TAB>path` for a
    /// symlink (not followed), `T` when there are more than the limit. Runs through sudo: the log
    /// directory may be closed to the login user.
    static func listScript(_ patterns: [String]) -> String {
        """
        IFS=''; n=0
        for p in \(patterns.map(shellQuote).joined(separator: " ")); do
          for f in $p; do
            if [ -L "$f" ]; then printf 'L\\t%s\\0' "$f"; continue; fi
            [ -f "$f" ] || continue
            n=$((n + 1)); if [ "$n" -gt \(maxFilesPerHost) ]; then printf 'T\\0'; break 2; fi
            printf 'F\\t%s\\t%s\\0' "$(stat -c %s -- "$f")" "$f"
          done
        done
        true
        """
    }

    /// Makes the login user's private directory for copies (`mktemp -d`, 0700), after removing any an
    /// earlier run left behind more than a day ago.
    static func stagingScript(base: String) -> String {
        "find \(shellQuote(base)) -maxdepth 1 -name '\(stagingPrefix)*' -user \"$(id -u)\" -mmin +1440 -exec rm -rf -- {} + 2>/dev/null; "
            + "mktemp -d \(shellQuote(base + "/" + stagingPrefix + "XXXXXXXX"))"
    }

    /// Copies `path` (as root) into `directory/copy`, owned by `user` and 0600: refused if the copy
    /// would leave less than 64 MiB free there; the source is never read through a symlink, the copy
    /// never written through one (`dd` nofollow and excl).
    static func copyScript(_ path: String, into directory: String, user: String) -> String {
        """
        d=\(shellQuote(directory)); f=\(shellQuote(path))
        need=$(stat -c %s -- "$f") || exit 3
        free=$(df -Pk -- "$d" | awk 'NR==2 {print $4}')
        if [ -n "$free" ] && [ "$free" -lt $((need / 1024 + 65536)) ]; then
          echo "not enough space in $d to copy $f: $free KiB free, $((need / 1024 + 65536)) KiB needed" >&2; exit 28
        fi
        dd if="$f" of="$d/copy" iflag=nofollow oflag=nofollow conv=excl bs=1M status=none || exit 4
        chown -- \(shellQuote(user)) "$d/copy" && chmod 0600 "$d/copy"
        """
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        do {
            let patterns = try patterns(for: host, inventory: context.inventory)
            return [
                HostContext.sudoCommand(Self.listScript(patterns)),
                "then, per file: a copy through sudo into a private mktemp -d directory, an SFTP download, removal",
            ]
        } catch {
            return ["# \(host.name): \(error)"]
        }
    }

    // MARK: - On one host

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let name = host.host.name
        let patterns: [String]
        do {
            patterns = try self.patterns(for: host.host, inventory: host.inventory)
        } catch {
            return .failed("\(error)")
        }
        let listing = try await host.execute(Self.listScript(patterns), sudo: true, echo: false)
        guard listing.succeeded else {
            if listing.sudoNeedsPassword {
                return .failed("sudo wants a password for \(host.user) (the listing needs sudo -n)")
            }
            return .failed(
                "listing \(patterns.joined(separator: " ")) failed (\(listing.outcome)): \(lastLine(listing.stderr))")
        }
        let (files, notes) = Self.parseListing(listing.stdout)
        guard !files.isEmpty else {
            let detail = notes.isEmpty ? "" : " (\(notes.joined(separator: "; ")))"
            return .failed("no file matches \(patterns.joined(separator: " ")) on the host\(detail)")
        }
        let total = files.reduce(0) { $0 + $1.size }
        guard total <= maxBytesPerHost else {
            return .failed(
                "\(files.count) file(s) matching \(patterns.joined(separator: " ")) hold \(Self.bytes(total)), more than "
                    + "max_size=\(Self.bytes(maxBytesPerHost)); narrow path= or raise max_size=")
        }
        let local: String
        do {
            local = try collection.directory(forHost: name)
            try Self.requireLocalSpace(in: local, for: total)
        } catch {
            return .failed("\(error)")
        }

        var fetched: [FetchedFile] = []
        var problems: [String] = []
        if host.user == "root" {
            for (index, file) in files.enumerated() {
                let target = "\(local)/\(index)-\(Self.safeName(file.path))"
                do {
                    try await host.download(file.path, to: target, limit: maxBytesPerHost)
                    fetched.append(FetchedFile(host: name, remotePath: file.path, localPath: target))
                } catch let error as SSHError where !error.kind.isConnectivity {
                    problems.append("\(file.path): \(error.message)")
                }
            }
        } else {
            try await fetchThroughCopies(files, host: host, into: local, fetched: &fetched, problems: &problems)
        }

        // Read every file through once: a bad one fails this host with the file named, and is left out.
        var counts = RecordCounts()
        var good: [FetchedFile] = []
        let checked = fetched
        let results = await onOwnThread { checked.map { Self.validate($0.localPath) } }
        for (file, result) in zip(fetched, results) {
            switch result {
            case .success(let fileCounts):
                counts.add(fileCounts)
                good.append(file)
            case .failure(let problem):
                problems.append("\(file.remotePath): \(problem)")
                unlink(file.localPath)
            }
        }
        collection.add(good, for: name)
        var message =
            "\(good.count) of \(files.count) file(s), \(Self.bytes(good.reduce(0) { $0 + Self.fileSize($1.localPath) })): \(counts)"
        if counts.replayed == 0 && !good.isEmpty {
            message += "; no replayed responses recorded (goreplay needs --output-http-track-response)"
        }
        message += notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")
        if !problems.isEmpty {
            return .failed(
                problems.joined(separator: "; ")
                    + (good.isEmpty ? "" : " (the other files are in the report: \(message))"))
        }
        return .ok(message)
    }

    /// Login user not root: each file is copied by sudo into a private directory, downloaded, removed;
    /// the directory is removed at the end whatever happened, even when the run is interrupted.
    private func fetchThroughCopies(
        _ files: [ListedFile], host: HostContext, into local: String, fetched: inout [FetchedFile],
        problems: inout [String]
    ) async throws {
        let made = try await host.execute(Self.stagingScript(base: stagingBase), echo: false)
        let staging = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard made.succeeded, staging.hasPrefix("\(stagingBase)/\(Self.stagingPrefix)"), !staging.contains("\n"),
            !staging.contains("..")
        else {
            throw ReplayReportError.staging(
                "cannot make a private directory in \(stagingBase) as \(host.user): \(lastLine(made.stderr))")
        }
        do {
            for (index, file) in files.enumerated() {
                try Task.checkCancellation()
                let copy = try await host.execute(
                    Self.copyScript(file.path, into: staging, user: host.user), sudo: true, echo: false)
                guard copy.succeeded else {
                    problems.append(
                        "\(file.path): copying it through sudo failed (\(copy.outcome)): \(lastLine(copy.stderr))")
                    _ = try? await host.execute("rm -f -- \(shellQuote(staging + "/copy"))", echo: false)
                    continue
                }
                let target = "\(local)/\(index)-\(Self.safeName(file.path))"
                do {
                    try await host.download(staging + "/copy", to: target, limit: maxBytesPerHost)
                    fetched.append(FetchedFile(host: host.host.name, remotePath: file.path, localPath: target))
                } catch let error as SSHError where !error.kind.isConnectivity {
                    problems.append("\(file.path): \(error.message)")
                }
                let removed = try await host.execute("rm -f -- \(shellQuote(staging + "/copy"))", echo: false)
                guard removed.succeeded else {
                    throw ReplayReportError.staging("cannot remove the copy in \(staging): \(lastLine(removed.stderr))")
                }
            }
        } catch {
            await Self.removeStaging(staging, on: host)
            throw error
        }
        await Self.removeStaging(staging, on: host)
    }

    /// Removes the host's private directory, in a task of its own so that a Ctrl-C that cancelled the
    /// run does not cancel the clean-up too (bounded: 20 s).
    static func removeStaging(_ staging: String, on host: HostContext) async {
        let removal = Task {
            try? await host.execute("rm -rf -- \(shellQuote(staging))", echo: false, timeout: .seconds(20))
        }
        let result = await removal.value
        if result?.succeeded != true {
            let why = result.map { " (\(lastLine($0.stderr)))" } ?? ""
            host.notice("could not remove \(staging)\(why); the next replay-report removes it after a day")
        }
    }

    struct ListedFile: Sendable, Hashable {
        var path: String
        var size: Int
    }

    /// The listing's files, and notes on what was passed over. Names come from the host: a name that
    /// is not printable UTF-8, or a size that is not a number, is passed over, never used.
    static func parseListing(_ output: String) -> ([ListedFile], [String]) {
        var files: [ListedFile] = []
        var seen = Set<String>()
        var notes: [String] = []
        var unreadableNames = 0
        for record in output.split(separator: "\0") {
            let fields = record.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            switch fields.first {
            case "F" where fields.count == 3:
                guard let size = Int(fields[1]), size >= 0, isPrintablePath(fields[2]) else {
                    unreadableNames += 1
                    continue
                }
                if seen.insert(fields[2]).inserted { files.append(ListedFile(path: fields[2], size: size)) }
            case "L" where fields.count == 2:
                notes.append("\(isPrintablePath(fields[1]) ? fields[1] : "a file") is a symlink, not followed")
            case "T":
                notes.append("only the first \(maxFilesPerHost) files are taken")
            default:
                unreadableNames += 1
            }
        }
        if unreadableNames > 0 { notes.append("\(unreadableNames) file name(s) not printable UTF-8 passed over") }
        return (files, notes)
    }

    static func isPrintablePath(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{FFFD}" }
    }

    /// A local file name from a remote one: its last component, letters, digits and `._-` only, no
    /// leading dot, at most 100 characters (the caller prefixes an index, so names never collide).
    static func safeName(_ remotePath: String) -> String {
        let base = remotePath.split(separator: "/").last.map(String.init) ?? "file"
        var name = String(
            base.unicodeScalars.map { scalar -> Character in
                scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "._-".unicodeScalars.contains(scalar))
                    ? Character(scalar) : "_"
            })
        while name.hasPrefix(".") { name.removeFirst() }
        if name.isEmpty { name = "file" }
        return String(name.suffix(100))
    }

    /// A host's local directory name: the same rule as ``safeName(_:)``.
    static func safeHostName(_ host: String) -> String { safeName("/" + host) }

    static func requireLocalSpace(in directory: String, for size: Int) throws(ReplayReportError) {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return }
        let free = Int(clamping: UInt64(info.f_bavail) &* UInt64(info.f_frsize))
        let needed = size + 64 << 20
        if free < needed {
            throw .staging(
                "not enough local space in \(directory): \(bytes(free)) free, \(bytes(needed)) needed (set TMPDIR elsewhere)"
            )
        }
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    static func bytes(_ count: Int) -> String {
        if count < 1 << 10 { return "\(count) B" }
        if count < 1 << 20 { return String(format: "%.1f KiB", Double(count) / 1024) }
        if count < 1 << 30 { return String(format: "%.1f MiB", Double(count) / 1_048_576) }
        return String(format: "%.2f GiB", Double(count) / 1_073_741_824)
    }

    /// Reads the whole file: its record counts, or why it is not a usable `.gor` file.
    static func validate(_ path: String) -> Result<RecordCounts, ValidationProblem> {
        do {
            let reader = try GorFileReader(path: path)
            var counts = RecordCounts()
            while let record = try reader.next() { counts.add(record.type) }
            counts.skipped = reader.skippedCount
            if counts.total == 0 && reader.skippedCount > 0 {
                let first = reader.skippedReasons.first.map { ": \($0)" } ?? ""
                return .failure(
                    ValidationProblem(
                        text: "not a .gor file: no readable record, \(reader.skippedCount) unreadable\(first)"))
            }
            return .success(counts)
        } catch {
            // The local path means nothing to the operator: say what failed.
            return .failure(
                ValidationProblem(text: "unreadable as .gor: \(error.detail ?? String(cString: strerror(error.code)))"))
        }
    }

    struct ValidationProblem: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }

    // MARK: - Once for the fleet

    public func finish(_ step: StepResults, context: RunContext) async -> FleetConclusion? {
        defer { collection.removeAll() }
        if context.dryRun { return nil }
        if step.interrupted { return FleetConclusion(text: "replay-report: interrupted; no report") }
        let delivered = collection.files
        let missing = step.hosts.compactMap { record -> MissingHost? in
            let files = delivered[record.host] ?? []
            if files.isEmpty || !record.outcome.hostOutcome.isSuccess {
                return MissingHost(
                    host: record.host, hasSomeFiles: !files.isEmpty,
                    reason: record.outcome.message ?? "\(record.outcome.hostOutcome)")
            }
            return nil
        }
        let ordered = step.hosts.flatMap { delivered[$0.host] ?? [] }
        guard !ordered.isEmpty else {
            return FleetConclusion(
                text: Self.missingLines(missing).joined(separator: "\n"),
                failure: "no host delivered a readable response file; no report")
        }
        let built = await onOwnThread { Self.buildReport(ordered) }
        let report: DiffReport
        switch built {
        case .success(let value): report = value
        case .failure(let problem): return FleetConclusion(text: "", failure: "building the report failed: \(problem)")
        }
        let hostsIn = step.hosts.map(\.host).filter { !(delivered[$0] ?? []).isEmpty }
        var lines = ["replay-report: \(hostsIn.count) of \(step.hosts.count) host(s), \(ordered.count) file(s)"]
        lines += Self.missingLines(missing)
        lines.append(report.text())
        var failures: [String] = []
        if let htmlPath {
            var title = "replay-report: \(context.inventory.name), \(hostsIn.count) of \(step.hosts.count) host(s)"
            let absent = missing.filter { !$0.hasSomeFiles }.map(\.host)
            if !absent.isEmpty { title += "; missing: " + absent.joined(separator: ", ") }
            do {
                try Self.writePrivate(report.html(title: title), to: htmlPath)
                lines.append("HTML report: \(htmlPath)")
            } catch {
                failures.append("\(error)")
            }
        }
        if let jsonPath {
            let document = FleetReportDocument(
                environment: context.inventory.name, hosts: hostsIn,
                missingHosts: missing, report: report)
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try Self.writePrivate(
                    String(decoding: try encoder.encode(document), as: UTF8.self) + "\n", to: jsonPath)
                lines.append("JSON report: \(jsonPath)")
            } catch {
                failures.append("\(error)")
            }
        }
        return FleetConclusion(
            text: lines.joined(separator: "\n"), failure: failures.isEmpty ? nil : failures.joined(separator: "; "))
    }

    /// Merges the files by timestamp into one report (bounded memory: the report's join window).
    static func buildReport(_ files: [FetchedFile]) -> Result<DiffReport, ValidationProblem> {
        var sources: [LabelledSource] = []
        for file in files {
            // Validated already; a reader that fails now is counted as missing data, not a crash.
            if let reader = try? GorFileReader(path: file.localPath) {
                sources.append(LabelledSource(reader: reader, label: file.label))
            }
        }
        do {
            var records = try MergedRecords(sources)
            var builder = ReportBuilder(options: ReportOptions())
            while let record = try records.next() { builder.add(record) }
            var report = builder.finish(files: files.map(\.label), skippedRecords: records.skippedRecords)
            report.skippedReasons = records.skippedDescriptions + sources.compactMap(\.failure)
            return .success(report)
        } catch {
            return .failure(ValidationProblem(text: "\(error)"))
        }
    }

    static func missingLines(_ missing: [MissingHost]) -> [String] {
        missing.map { host in
            (host.hasSomeFiles ? "incomplete: \(host.host) (some files left out): " : "missing: \(host.host): ")
                + host.reason
        }
    }

    /// Writes `text` to `path` mode 0600: a new temporary file beside it (exclusive, never through a
    /// symlink), fsynced, renamed over `path` (a symlink there is replaced, not followed).
    static func writePrivate(_ text: String, to path: String) throws(ReplayReportError) {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).govuk-fab-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .output(path, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var ok = fchmod(fd, 0o600) == 0
        var error = ok ? 0 : errno
        let bytes = Array(text.utf8)
        var offset = 0
        while ok && offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 {
                ok = false
                error = errno
            } else {
                offset += written
            }
        }
        if ok && fsync(fd) != 0 {
            ok = false
            error = errno
        }
        close(fd)
        if ok && rename(temporary, path) != 0 {
            ok = false
            error = errno
        }
        if !ok {
            unlink(temporary)
            throw .output(path, String(cString: strerror(error)))
        }
    }
}

/// Why `replay-report` cannot fetch from a host or write its output.
enum ReplayReportError: Error, CustomStringConvertible {
    /// No file pattern for the host.
    case noPattern(String)
    /// The host's or this machine's temporary space.
    case staging(String)
    /// A local report file.
    case output(String, String)

    var description: String {
        switch self {
        case .noPattern(let why): "\(why); give the files with path=GLOB (see help:replay-report)"
        case .staging(let why): why
        case .output(let path, let why): "cannot write \(path): \(why)"
        }
    }
}

/// A file fetched from a host, waiting for the report.
struct FetchedFile: Sendable, Hashable {
    var host: String
    var remotePath: String
    var localPath: String
    /// What the report calls it: `host:remote path`.
    var label: String { "\(host):\(remotePath)" }
}

/// Records of one host's files, by type.
struct RecordCounts: Sendable, Hashable, CustomStringConvertible {
    var requests = 0, original = 0, replayed = 0, skipped = 0
    var total: Int { requests + original + replayed }

    mutating func add(_ type: PayloadType) {
        switch type {
        case .request: requests += 1
        case .response: original += 1
        case .replayedResponse: replayed += 1
        }
    }

    mutating func add(_ other: RecordCounts) {
        requests += other.requests
        original += other.original
        replayed += other.replayed
        skipped += other.skipped
    }

    var description: String {
        "\(requests) requests, \(original) original and \(replayed) replayed responses"
            + (skipped > 0 ? ", \(skipped) unreadable records skipped" : "")
    }
}

/// A host whose data is not (all) in the report, and why.
struct MissingHost: Sendable, Hashable, Encodable {
    var host: String
    /// Some of its files are in the report (others were bad).
    var hasSomeFiles: Bool
    var reason: String
}

/// `json=FILE`: the report and the hosts it covers.
struct FleetReportDocument: Encodable {
    var environment: String
    var hosts: [String]
    var missingHosts: [MissingHost]
    var report: DiffReport
}

/// A file's records under its `host:path` name; a read error ends that file (recorded) instead of the report.
final class LabelledSource: GorRecordSource {
    let reader: GorFileReader
    let label: String
    private(set) var failure: String?

    init(reader: GorFileReader, label: String) {
        self.reader = reader
        self.label = label
    }

    var sourceName: String { label }

    func nextRecord() throws -> ReplayMessage? {
        guard failure == nil else { return nil }
        do {
            return try reader.next()
        } catch {
            failure = "\(label): read stopped: \(error.detail ?? String(cString: strerror(error.code)))"
            return nil
        }
    }

    var skippedRecords: Int { reader.skippedCount }
    var skippedDescriptions: [String] { reader.skippedReasons.map { "\(label): \($0)" } }
}

extension ReplayReportTask {
    /// Downloads of one run, by host, in a private local directory removed by the finish step.
    final class Collection: Sendable {
        private struct State {
            var root: String?
            var files: [String: [FetchedFile]] = [:]
            var hostDirectories: [String: String] = [:]
        }
        private let state = Mutex(State())
        private let base: String

        init(base: String) { self.base = base }

        /// The host's own new directory under this run's private root (made on first use, 0700).
        func directory(forHost host: String) throws(ReplayReportError) -> String {
            let result: Result<String, ReplayReportError> = state.withLock { state in
                if state.root == nil {
                    var template = Array((base + "/govuk-fab-replay-report.XXXXXX").utf8CString)
                    guard let made = mkdtemp(&template) else {
                        return .failure(
                            .staging("cannot make a local temporary directory: \(String(cString: strerror(errno)))"))
                    }
                    state.root = String(cString: made)
                }
                if let existing = state.hostDirectories[host] { return .success(existing) }
                let path = "\(state.root!)/\(state.hostDirectories.count)-\(ReplayReportTask.safeHostName(host))"
                guard mkdir(path, 0o700) == 0 else {
                    return .failure(.staging("cannot make \(path): \(String(cString: strerror(errno)))"))
                }
                state.hostDirectories[host] = path
                return .success(path)
            }
            return try result.get()
        }

        func add(_ files: [FetchedFile], for host: String) {
            state.withLock { $0.files[host, default: []] += files }
        }

        var files: [String: [FetchedFile]] { state.withLock { $0.files } }

        func removeAll() {
            let root = state.withLock { state -> String? in
                defer { state = State() }
                return state.root
            }
            if let root { try? FileManager.default.removeItem(atPath: root) }
        }
    }
}

/// Runs `body` on a thread of its own: reading gigabytes of `.gor` must not hold one of the few
/// threads of Swift's concurrency pool, which every host's SSH session needs.
private func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

private func lastLine(_ text: String) -> String {
    text.split(separator: "\n").last.map { String($0.prefix(300)) } ?? "(no output)"
}

extension ReplayReportTask: BuiltInTask {
    static var descriptors: [TaskDescriptor] { [descriptor] }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> ReplayReportTask {
        try parse(invocation)
    }
}
