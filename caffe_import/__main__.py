from caffe_import.cli import main
import sys
sys.exit(main())
