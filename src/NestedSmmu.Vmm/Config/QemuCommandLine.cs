using System.Text;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// QEMU command lines to <see cref="MachineSpec"/> and back. Accepts lines as users paste them:
/// the optional leading <c>qemu-system-aarch64</c> word, <c>--opt</c> for <c>-opt</c>, and
/// (through <see cref="SplitShellWords"/>) quotes and backslash-newline continuations.
/// Errors are <see cref="QemuConfigException"/> with QEMU's message and the option quoted.
/// </summary>
public static class QemuCommandLine
{
    /// <summary>The program word a pasted line may start with.</summary>
    public const string ProgramName = "qemu-system-aarch64";

    /// <summary>Options that take no argument (qemu-options.hx entries without one).</summary>
    private static readonly HashSet<string> Flags = new(StringComparer.Ordinal)
    {
        "nographic", "nodefaults", "S", "s", "no-reboot", "no-shutdown", "enable-kvm", "snapshot", "daemonize",
        "no-user-config", "full-screen", "preconfig", "only-migratable", "mem-prealloc", "no-hpet", "no-acpi",
        "enable-sync-profile", "version", "h", "help", "win2k-hack", "no-fd-bootchk", "alt-grab", "ctrl-grab",
    };

    /// <summary>Options that take an argument and are kept as written (not modelled).</summary>
    private static readonly HashSet<string> ArgumentOptions = new(StringComparer.Ordinal)
    {
        "bios", "drive", "blockdev", "netdev", "nic", "display", "serial", "monitor", "mon", "qmp", "chardev",
        "kernel", "initrd", "append", "dtb", "name", "uuid", "boot", "qtest", "qtest-log", "D", "d", "trace", "L",
        "vga", "global", "rtc", "incoming", "pidfile", "fsdev", "virtfs", "audiodev", "add-fd", "k", "icount",
        "msg", "overcommit", "sandbox", "run-with", "action", "plugin", "semihosting-config", "mem-path",
        "fw_cfg", "set", "readconfig", "hda", "hdb", "hdc", "hdd", "cdrom", "pflash", "mtdblock", "sd", "fda",
        "fdb", "tpmdev", "smbios", "loadvm", "parallel", "usbdevice", "watchdog-action", "iscsi", "compat",
        "device-tree", "spice", "vnc", "sdl", "cpu-topology", "machine-json",
    };

    /// <summary>Splits a pasted shell line into words: '...' and "..." quoting, backslash escapes, backslash-newline joins.</summary>
    public static IReadOnlyList<string> SplitShellWords(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var words = new List<string>();
        var cur = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quote != '\0')
            {
                if (c == quote) { quote = '\0'; continue; }
                if (c == '\\' && quote == '"' && i + 1 < line.Length && line[i + 1] is '"' or '\\' or '$') { cur.Append(line[++i]); continue; }
                cur.Append(c);
                continue;
            }
            if (c == '\\' && i + 1 < line.Length)
            {
                char n = line[++i];
                if (n == '\n' || (n == '\r' && i + 1 < line.Length && line[i + 1] == '\n' && ++i > 0)) continue;
                cur.Append(n);
                inWord = true;
                continue;
            }
            if (char.IsWhiteSpace(c))
            {
                if (inWord) { words.Add(cur.ToString()); cur.Clear(); inWord = false; }
                continue;
            }
            if (c is '\'' or '"') { quote = c; inWord = true; continue; }
            cur.Append(c);
            inWord = true;
        }
        if (quote != '\0') throw new QemuConfigException(null, $"unterminated {quote} quote in the command line");
        if (inWord) words.Add(cur.ToString());
        return words;
    }

    /// <summary>Parses a pasted command line (see <see cref="SplitShellWords"/>).</summary>
    /// <exception cref="QemuConfigException">The first option QEMU would refuse while parsing.</exception>
    public static MachineSpec Parse(string line) => Parse(SplitShellWords(line));

    /// <summary>Parses QEMU arguments into a <see cref="MachineSpec"/>.</summary>
    /// <exception cref="QemuConfigException">The first option QEMU would refuse while parsing.</exception>
    public static MachineSpec Parse(IReadOnlyList<string> args) => Parse(args, out _);

    /// <summary>Parses QEMU arguments; <paramref name="warnings"/> gets what QEMU warns about while parsing.</summary>
    /// <exception cref="QemuConfigException">The first option QEMU would refuse while parsing.</exception>
    public static MachineSpec Parse(IReadOnlyList<string> args, out IReadOnlyList<string> warnings)
    {
        ArgumentNullException.ThrowIfNull(args);
        var warn = new List<string>();
        var builder = new SpecBuilder(warn);
        int start = args.Count > 0 && IsProgramWord(args[0]) ? 1 : 0;
        int position = 0;
        for (int i = start; i < args.Count; i++)
        {
            string word = args[i];
            if (!word.StartsWith('-') || word.Length == 1)
                throw new QemuConfigException(null,
                    $"{word}: not an option (QEMU reads a bare word as a disk image; write it as -drive file=...)");
            string name = word.StartsWith("--", StringComparison.Ordinal) ? word[2..] : word[1..];
            if (name == "M") name = "machine";
            if (Flags.Contains(name))
            {
                builder.Flag(name, position++);
                continue;
            }
            if (!ArgumentOptions.Contains(name) && !SpecBuilder.Modelled.Contains(name))
                throw new QemuConfigException(null, $"-{name}: invalid option");
            if (i + 1 >= args.Count)
                throw new QemuConfigException(null, $"-{name}: requires an argument");
            builder.Option(name, args[++i], position++);
        }
        warnings = warn;
        return builder.Build();
    }

    private static bool IsProgramWord(string word) =>
        word == ProgramName || word.EndsWith("/" + ProgramName, StringComparison.Ordinal);

    /// <summary>The spec as QEMU arguments, options in their command-line order (without the program word).</summary>
    public static IReadOnlyList<string> Format(MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var args = new List<string>();
        foreach (OptionRecord o in spec.AllOptions())
        {
            if (o is MachineOptions { Position: < 0 }) continue; // the implied "-machine virt" no one wrote
            args.Add("-" + o.Option);
            if (!IsFlagRecord(o)) args.Add(o.Text);
        }
        return args;
    }

    private static bool IsFlagRecord(OptionRecord o) => o is UnmodelledOption u && Flags.Contains(u.Name);

    /// <summary>The spec as one shell line starting with <see cref="ProgramName"/>, words quoted where needed.</summary>
    public static string FormatLine(MachineSpec spec) =>
        string.Join(" ", new[] { ProgramName }.Concat(Format(spec).Select(QuoteWord)));

    private static string QuoteWord(string w) =>
        w.Length > 0 && w.All(c => char.IsAsciiLetterOrDigit(c) || "-_=,.:/@+%".Contains(c)) ? w : "'" + w.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
