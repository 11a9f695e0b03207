#pragma once
// A temporary directory shared by all ranks of MPI_COMM_WORLD (rank 0 makes
// it, every rank gets its name), removed when the test ends.

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace khalo::test {

class SharedTempDir {
 public:
  SharedTempDir() {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char name[256] = {};
    if (rank == 0) {
      std::string templ = (std::filesystem::temp_directory_path() / "khalo-test-XXXXXX").string();
      std::snprintf(name, sizeof(name), "%s", mkdtemp(templ.data()));
    }
    MPI_Bcast(name, sizeof(name), MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = name;
  }
  ~SharedTempDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) std::filesystem::remove_all(path_);
  }
  SharedTempDir(const SharedTempDir&) = delete;
  SharedTempDir& operator=(const SharedTempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace khalo::test
