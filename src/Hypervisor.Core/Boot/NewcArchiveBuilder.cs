using System.Globalization;
using System.Text;

namespace Hypervisor.Core.Boot;

/// <summary>
/// Writes a "newc" cpio archive, the initramfs format the kernel unpacks (Documentation/driver-api/early-userspace/
/// buffer-format.rst): per entry a 110-byte ASCII header ("070701" and 13 eight-digit hex fields: ino, mode, uid, gid,
/// nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the name with its zero, padding
/// to 4 bytes, the data, padding to 4 bytes; an entry named "TRAILER!!!" ends the archive.
/// </summary>
/// <remarks>Entries are owned by root (uid and gid 0) with mtime 0. Add parent directories before their contents.</remarks>
public sealed class NewcArchiveBuilder
{
    private readonly MemoryStream _stream = new();
    private uint _inode = 1;
    private bool _finished;

    /// <summary>Adds a directory (<paramref name="permissions"/> as in chmod, default 0755).</summary>
    public NewcArchiveBuilder AddDirectory(string name, int permissions = 0x1ED) => Add(name, 0x4000 | permissions, [], 0, 0, nlink: 2);

    /// <summary>Adds a regular file (default 0755).</summary>
    public NewcArchiveBuilder AddFile(string name, ReadOnlySpan<byte> data, int permissions = 0x1ED) => Add(name, 0x8000 | permissions, data, 0, 0, nlink: 1);

    /// <summary>Adds a symbolic link to <paramref name="target"/>.</summary>
    public NewcArchiveBuilder AddSymlink(string name, string target) => Add(name, 0xA000 | 0x1FF, Encoding.ASCII.GetBytes(target), 0, 0, nlink: 1);

    /// <summary>Adds a character device node (default 0600), for example <c>dev/console</c> (5, 1).</summary>
    public NewcArchiveBuilder AddCharDevice(string name, int major, int minor, int permissions = 0x180) =>
        Add(name, 0x2000 | permissions, [], major, minor, nlink: 1);

    /// <summary>Appends the trailer and returns the archive; the builder cannot be used afterwards.</summary>
    public byte[] Build()
    {
        Add("TRAILER!!!", 0, [], 0, 0, nlink: 1, inode: 0);
        _finished = true;
        return _stream.ToArray();
    }

    private NewcArchiveBuilder Add(string name, int mode, ReadOnlySpan<byte> data, int rdevMajor, int rdevMinor, int nlink, uint? inode = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ObjectDisposedException.ThrowIf(_finished, this);
        var header = new StringBuilder("070701", 110);
        foreach (long field in (ReadOnlySpan<long>)
                 [inode ?? _inode++, mode, 0, 0, nlink, 0, data.Length, 0, 0, rdevMajor, rdevMinor, name.Length + 1, 0])
        {
            header.Append(field.ToString("X8", CultureInfo.InvariantCulture));
        }

        _stream.Write(Encoding.ASCII.GetBytes(header.ToString()));
        _stream.Write(Encoding.ASCII.GetBytes(name + "\0"));
        Pad();
        _stream.Write(data);
        Pad();
        return this;
    }

    private void Pad()
    {
        while (_stream.Length % 4 != 0)
        {
            _stream.WriteByte(0);
        }
    }
}
