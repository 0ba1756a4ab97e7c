package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Each provider process's directory is named with this prefix and holds a lock file that the
// process keeps locked while it runs. The kernel drops the lock however the process ends (a
// SIGKILL included), so a directory whose lock can be taken belongs to no running provider.
const (
	tempDirPrefix = "pulumi-resource-kubernetes-"
	lockFileName  = ".owner.lock"
	// A directory younger than this is left alone even when unlocked: its owner may be between
	// creating it and locking it.
	abandonedAfter = time.Minute
)

type privateTempDir struct {
	path string
	lock *os.File
	once sync.Once
}

// claimPrivateTempDir removes the directories that providers killed before cleaning up left in
// base, then creates and locks one for this process.
func claimPrivateTempDir(base string) (*privateTempDir, error) {
	removeAbandonedTempDirs(base, time.Now())
	path, err := os.MkdirTemp(base, tempDirPrefix)
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(path, lockFileName), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		if err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(path)
		return nil, err
	}
	return &privateTempDir{path: path, lock: lock}, nil
}

// remove deletes the directory and everything in it, once.
func (d *privateTempDir) remove() {
	d.once.Do(func() {
		os.RemoveAll(d.path)
		d.lock.Close()
	})
}

// removeAbandonedTempDirs deletes base's provider directories whose lock no process holds.
func removeAbandonedTempDirs(base string, now time.Time) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, entry := range entries {
		if !entry.IsDir() || !strings.HasPrefix(entry.Name(), tempDirPrefix) {
			continue
		}
		path := filepath.Join(base, entry.Name())
		if info, err := entry.Info(); err != nil || now.Sub(info.ModTime()) < abandonedAfter {
			continue
		}
		lock, err := os.OpenFile(filepath.Join(path, lockFileName), os.O_RDWR, 0)
		if err != nil {
			// No lock file past the grace period: its owner failed before locking it.
			if os.IsNotExist(err) {
				os.RemoveAll(path)
			}
			continue
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(path)
		}
		lock.Close()
	}
}
